#!/usr/bin/env bash
# Reorder a pg_restore table of contents so that plwasm's modules (the data of wasm.module_store)
# are restored before any other table's data.
#
# pg_dump orders table data by schema name, so a table in schema "public" is restored before
# wasm.module_store. CHECK constraints that call wasm functions are dumped after all the data
# (see docs/sql-reference.md, "Backup and restore"), but a stored generated column that calls one
# is computed during the COPY, which then fails ("module ... does not exist") and loses the
# table's rows. Restoring through a list rewritten by this script puts the modules first:
#
#   pg_dump -Fc -f db.dump mydb
#   pg_restore -l db.dump | bash scripts/restore-list.sh > db.list
#   pg_restore -L db.list -d target db.dump            # or: -f db.sql for a plain SQL script
#
# Parallel restore (-j) runs table data concurrently whatever the list says; restore the schema,
# then the modules, then the rest:
#
#   pg_restore -l db.dump | bash scripts/restore-list.sh --modules-only > modules.list
#   pg_restore -l db.dump | bash scripts/restore-list.sh --without-modules > rest.list
#   pg_restore --section=pre-data -d target db.dump
#   pg_restore -L modules.list -d target db.dump
#   pg_restore -j 4 --section=data --section=post-data -L rest.list -d target db.dump
#
# Reads the list on stdin, writes it on stdout; entries are only moved or left out, never changed.
set -euo pipefail

mode=reorder
case ${1:-} in
    "") ;;
    --modules-only) mode=only ;;
    --without-modules) mode=without ;;
    *) echo "usage: restore-list.sh [--modules-only | --without-modules] < list > list" >&2; exit 2 ;;
esac

awk -v mode="$mode" '
    # A TOC entry: "<id>; <catalog oid> <oid> <TYPE...> <schema> <name> <owner>".
    function is_data(line)    { return line ~ /^[0-9]+; [0-9]+ [0-9]+ TABLE DATA / }
    # The entry ends with one more word, the owner: a table of a schema named "wasm module_store"
    # ("TABLE DATA wasm module_store t owner") is not taken for it.
    function is_modules(line) { return line ~ /^[0-9]+; [0-9]+ [0-9]+ TABLE DATA wasm module_store [^ ]+$/ }
    { lines[NR] = $0 }
    END {
        for (i = 1; i <= NR; i++) if (is_modules(lines[i])) modules[++m] = lines[i]
        if (mode == "only") {
            for (j = 1; j <= m; j++) print modules[j]
            exit
        }
        if (mode == "without") {
            for (i = 1; i <= NR; i++) if (!is_modules(lines[i])) print lines[i]
            exit
        }
        placed = 0
        for (i = 1; i <= NR; i++) {
            if (is_modules(lines[i])) continue
            if (!placed && is_data(lines[i])) {
                for (j = 1; j <= m; j++) print modules[j]
                placed = 1
            }
            print lines[i]
        }
        if (!placed) for (j = 1; j <= m; j++) print modules[j]
    }
'
