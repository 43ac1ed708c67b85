/*
 * plwasm.h — write plwasm functions (ABI v1, docs/abi.md) in C.
 *
 * Build a module with clang and wasi-libc (for malloc), as a reactor:
 *     clang --target=wasm32-wasi --sysroot=/usr -mexec-model=reactor -O2 -I udf-sdk/c \
 *           -o mine.wasm mine.c
 * (or scripts/build-wasm.sh c mine.c mine.wasm). In exactly one file, before including:
 *     #define PLWASM_IMPLEMENTATION
 * to define the plwasm_alloc / plwasm_free exports.
 *
 * Arguments: scalars as C scalars (int32_t, int64_t, float, double; smallint and boolean as
 * int32_t); text, bytea, json(b) and packed arrays as a pointer and a byte length. Results:
 * scalars as C scalars, everything else as the int64_t from plwasm_result_copy().
 */
#ifndef PLWASM_H
#define PLWASM_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define PLWASM_EXPORT(name) __attribute__((export_name(#name)))
#define PLWASM_IMPORT(name) __attribute__((import_module("plwasm"), import_name(#name)))

/* Host API (import module "plwasm"). */
PLWASM_IMPORT(arg_is_null) int32_t plwasm_arg_is_null(int32_t index);
PLWASM_IMPORT(return_null) void plwasm_return_null(void);
PLWASM_IMPORT(log) void plwasm_log_bytes(int32_t level, const char *ptr, int32_t len);
PLWASM_IMPORT(error) void plwasm_error_bytes(const char *ptr, int32_t len);
PLWASM_IMPORT(error_code)
void plwasm_error_code_bytes(const char *code, int32_t code_len, const char *ptr, int32_t len);

enum { PLWASM_DEBUG = 0, PLWASM_LOG = 1, PLWASM_INFO = 2, PLWASM_NOTICE = 3, PLWASM_WARNING = 4 };

/* A message at `level`, reported when the call returns. */
static inline void plwasm_log(int32_t level, const char *message) {
    plwasm_log_bytes(level, message, (int32_t)strlen(message));
}

/* End the call with an ERROR (SQLSTATE P0001, or `sqlstate` such as "22012"). */
__attribute__((noreturn)) static inline void plwasm_error(const char *message) {
    plwasm_error_bytes(message, (int32_t)strlen(message));
    __builtin_unreachable();
}
__attribute__((noreturn)) static inline void plwasm_error_code(const char *sqlstate, const char *message) {
    plwasm_error_code_bytes(sqlstate, (int32_t)strlen(sqlstate), message, (int32_t)strlen(message));
    __builtin_unreachable();
}

/* A variable-length result: copies `len` bytes into a buffer the host frees with plwasm_free. */
static inline int64_t plwasm_result_copy(const void *data, size_t len) {
    char *buffer = malloc(len ? len : 1);
    if (!buffer) plwasm_error_code("53200", "out of memory in the module");
    if (len) memcpy(buffer, data, len);
    return (int64_t)((uint64_t)(uintptr_t)buffer << 32 | (uint32_t)len);
}

/*
 * Read-only queries (docs/abi.md, "Queries"), for modules given the query capability
 * (SELECT wasm.set_capabilities('mine', '{query}')). One SELECT, VALUES or TABLE statement, run
 * as the calling role; `params_json` is a JSON array for $1, $2, ... (or NULL for none). Rows
 * come back as a JSON array of objects, NUL-terminated, in memory the caller frees. An ERROR in
 * the query ends the call (it is raised in SQL with its own SQLSTATE): these only return on
 * success.
 */
PLWASM_IMPORT(query)
int32_t plwasm_query_bytes(const char *sql, int32_t sql_len, const char *params, int32_t params_len);
PLWASM_IMPORT(query_read) int32_t plwasm_query_read(char *buffer, int32_t len);
PLWASM_IMPORT(cursor_open)
int32_t plwasm_cursor_open_bytes(const char *sql, int32_t sql_len, const char *params, int32_t params_len);
PLWASM_IMPORT(cursor_fetch) int32_t plwasm_cursor_fetch_bytes(int32_t cursor, int32_t rows);
PLWASM_IMPORT(cursor_close) void plwasm_cursor_close(int32_t cursor);

/* The `len` bytes the last query or fetch returned, NUL-terminated, in malloc'd memory. */
static inline char *plwasm_query_take(int32_t len) {
    char *rows = malloc((size_t)len + 1);
    if (!rows) plwasm_error_code("53200", "out of memory in the module");
    int32_t n = plwasm_query_read(rows, len);
    rows[n < 0 ? 0 : n] = '\0';
    return rows;
}

/* All rows of a query (e.g. plwasm_query("SELECT name FROM t WHERE id = $1", "[42]")). */
static inline char *plwasm_query(const char *sql, const char *params_json) {
    int32_t params_len = params_json ? (int32_t)strlen(params_json) : 0;
    return plwasm_query_take(
        plwasm_query_bytes(sql, (int32_t)strlen(sql), params_json, params_len));
}

/* A cursor over a query; plwasm_cursor_fetch gives up to `rows` rows at a time ("[]" at the
 * end); close it with plwasm_cursor_close (the call's cursors are closed when it ends). */
static inline int32_t plwasm_cursor_open(const char *sql, const char *params_json) {
    int32_t params_len = params_json ? (int32_t)strlen(params_json) : 0;
    return plwasm_cursor_open_bytes(sql, (int32_t)strlen(sql), params_json, params_len);
}
static inline char *plwasm_cursor_fetch(int32_t cursor, int32_t rows) {
    return plwasm_query_take(plwasm_cursor_fetch_bytes(cursor, rows));
}

/*
 * Triggers (docs/abi.md, "Triggers"): a trigger function is an export
 *     PLWASM_EXPORT(f) int64_t f(const char *event, int32_t len)
 * described with "returns":"trigger" and no arguments. The event is JSON text; a BEFORE or
 * INSTEAD OF row trigger returns PLWASM_TRIGGER_UNCHANGED, plwasm_trigger_skip(), or
 * plwasm_result_copy() of a JSON object of the columns to change. Postgres ignores what AFTER
 * and statement-level triggers return.
 */
#define PLWASM_TRIGGER_UNCHANGED ((int64_t)0)
static inline int64_t plwasm_trigger_skip(void) { return plwasm_result_copy("\"skip\"", 6); }

/*
 * Copy the event's string field `key` ("name", "when", "level", "event", "schema" or "table",
 * which come before the rows) into `out` (NUL-terminated, cut to `cap` - 1 bytes, JSON escapes
 * \" and \\ undone; others are copied as they are). Returns its length, or -1 if absent.
 */
static inline int32_t plwasm_event_string(const char *event, int32_t len, const char *key,
                                          char *out, int32_t cap) {
    size_t key_len = strlen(key);
    for (int32_t i = 0; i + (int32_t)key_len + 4 <= len; i++) {
        if (event[i] != '"' || memcmp(event + i + 1, key, key_len) != 0 ||
            memcmp(event + i + 1 + key_len, "\":\"", 3) != 0)
            continue;
        int32_t n = 0;
        for (int32_t j = i + (int32_t)key_len + 4; j < len && event[j] != '"'; j++) {
            if (event[j] == '\\' && j + 1 < len) j++;
            if (n + 1 < cap) out[n++] = event[j];
        }
        if (cap > 0) out[n < cap ? n : cap - 1] = '\0';
        return n;
    }
    return -1;
}

/*
 * Self-description for wasm.create_functions: one JSON object per function, as ONE string
 * literal ending in "\n" (it is stringized into an assembler directive, so no concatenation of
 * adjacent literals), at file scope:
 *     PLWASM_DESCRIBE("{\"name\":\"c_mean\",\"export\":\"c_mean\",\"args\":[...],...}\n");
 * It goes into the custom section "plwasm.udfs" (clang places data sections into DATA, so this
 * uses the assembler's custom-section directive instead of __attribute__((section))).
 */
#define PLWASM_DESCRIBE(json_literal) \
    __asm__(".section .custom_section.plwasm.udfs,\"\",@\n.ascii " #json_literal "\n.text\n")

/* The plwasm ABI this header is for; PLWASM_IMPLEMENTATION records it in the module's
 * "plwasm.abi" custom section, and wasm.load refuses a module built for another ABI. */
#define PLWASM_ABI_VERSION 1

#ifdef PLWASM_IMPLEMENTATION
__asm__(".section .custom_section.plwasm.abi,\"\",@\n.ascii \"1\\n\"\n.text\n");

PLWASM_EXPORT(plwasm_alloc) int32_t plwasm_alloc(int32_t len) {
    return (int32_t)(uintptr_t)malloc(len > 0 ? (size_t)len : 1);
}
PLWASM_EXPORT(plwasm_free) void plwasm_free(int32_t ptr, int32_t len) {
    (void)len;
    free((void *)(uintptr_t)ptr);
}
#endif

#endif /* PLWASM_H */
