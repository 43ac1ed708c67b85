-- Who may load, replace, unload and use modules; instances are never shared between roles.
-- (Roles are cluster-wide: a run that died half-way may have left them.)
DROP ROLE IF EXISTS priv_loader_a, priv_loader_b, priv_user;
CREATE ROLE priv_loader_a LOGIN;
CREATE ROLE priv_loader_b LOGIN;
CREATE ROLE priv_user LOGIN;
GRANT wasm_loader TO priv_loader_a, priv_loader_b;
GRANT CREATE ON SCHEMA public TO priv_user, priv_loader_a, priv_loader_b;

-- wasm.load and wasm.unload are not executable by PUBLIC.
SELECT p.proname, has_function_privilege('priv_user', p.oid, 'EXECUTE') AS priv_user_may,
       has_function_privilege('priv_loader_a', p.oid, 'EXECUTE') AS loader_may
  FROM pg_proc p WHERE p.pronamespace = 'wasm'::regnamespace AND p.proname IN ('load', 'unload', 'wat')
 ORDER BY 1;
SET ROLE priv_user;
SELECT sqlstate_of($$SELECT wasm.load('mine', wasm.wat('(module)'))$$);
-- The catalog table is neither readable nor writable directly; the view is readable.
SELECT sqlstate_of($$SELECT count(*) FROM wasm.module_store$$);
SELECT sqlstate_of($$INSERT INTO wasm.module_store VALUES ('x', 10, '\x0061736d01000000', '', '[]')$$);
SELECT has_table_privilege('wasm.modules', 'SELECT') AS view_readable,
       has_table_privilege('wasm.module_store', 'SELECT') AS table_readable;
RESET ROLE;
-- Even with EXECUTE granted explicitly, loading needs wasm_loader membership.
GRANT EXECUTE ON FUNCTION wasm.load(text, bytea, boolean) TO priv_user;
SET ROLE priv_user;
SELECT sqlstate_of($$SELECT wasm.load('mine', wasm.wat('(module)'))$$);
RESET ROLE;
REVOKE EXECUTE ON FUNCTION wasm.load(text, bytea, boolean) FROM priv_user;

-- A member of wasm_loader loads a module: it owns it.
SET ROLE priv_loader_a;
SELECT wasm.load('counter', wasm.wat($$
  (module
    (global $n (mut i32) (i32.const 0))
    (memory 1)
    (func (export "bump") (result i32)
      global.get $n i32.const 1 i32.add global.set $n
      i32.const 0 global.get $n i32.store
      global.get $n)
    (func (export "peek") (result i32) i32.const 0 i32.load))
$$));
SELECT name, owner FROM wasm.modules WHERE name = 'counter';
RESET ROLE;

-- Another loader may neither replace nor unload it; its owner and superusers may.
SET ROLE priv_loader_b;
SELECT sqlstate_of($$SELECT wasm.load('counter', wasm.wat('(module)'), replace => true)$$);
SELECT sqlstate_of($$SELECT wasm.unload('counter')$$);
SELECT sqlstate_of($$SELECT wasm.load('counter', wasm.wat('(module)'))$$);
RESET ROLE;

-- LANGUAGE wasm is trusted: any role may create functions over loaded modules.
SELECT lanname, lanpltrusted FROM pg_language WHERE lanname = 'wasm';
SET ROLE priv_user;
CREATE FUNCTION public.priv_bump() RETURNS int LANGUAGE wasm AS 'counter:bump';
CREATE FUNCTION public.priv_peek() RETURNS int LANGUAGE wasm AS 'counter:peek';
SELECT public.priv_bump() AS user_first, public.priv_bump() AS user_second, public.priv_peek() AS user_memory;
RESET ROLE;

-- Another role calling the same functions in this backend gets its own instance: it does not see
-- the first role's globals or memory.
SET ROLE priv_loader_b;
SELECT public.priv_peek() AS other_role_memory, public.priv_bump() AS other_role_first;
RESET ROLE;
SET ROLE priv_user;
SELECT public.priv_peek() AS user_memory_kept, public.priv_bump() AS user_third;
RESET ROLE;
-- SECURITY DEFINER functions run as their owner, with the owner's instance: the owner (this
-- superuser) bumps its own instance to 5, and priv_user's definer call sees 5, not its own 3.
CREATE FUNCTION public.priv_peek_definer() RETURNS int LANGUAGE wasm SECURITY DEFINER AS 'counter:peek';
SELECT max(public.priv_bump()) AS owner_bumped FROM generate_series(1, 5);
SET ROLE priv_user;
SELECT public.priv_peek_definer() AS definer_memory, public.priv_peek() AS own_memory;
RESET ROLE;

-- The module's owner may not drop other roles' functions through wasm.unload(cascade): nothing
-- is dropped.
SET ROLE priv_loader_a;
SELECT sqlstate_of($$SELECT wasm.unload('counter', cascade => true)$$);
RESET ROLE;
SELECT (SELECT count(*) FROM pg_proc WHERE proname IN ('priv_bump', 'priv_peek', 'priv_peek_definer')) AS functions_kept,
       (SELECT count(*) FROM wasm.modules WHERE name = 'counter') AS module_kept;

-- The owner replaces and unloads it.
DROP FUNCTION public.priv_bump(), public.priv_peek(), public.priv_peek_definer();
SET ROLE priv_loader_a;
SELECT wasm.load('counter', wasm.wat('(module (func (export "f")))'), replace => true);
SELECT wasm.unload('counter');
RESET ROLE;

-- A superuser may replace or unload anyone's module.
SET ROLE priv_loader_a;
SELECT wasm.load('owned_by_a', wasm.wat('(module)'));
RESET ROLE;
SELECT wasm.load('owned_by_a', wasm.wat('(module (func (export "f")))'), true);
SELECT owner AS owner_after_superuser_replace FROM wasm.modules WHERE name = 'owned_by_a';
SELECT wasm.unload('owned_by_a');

-- A trap in one role's instance leaves other roles' instances in the backend (and their state)
-- alone: here the superuser's counter goes on at 3 after priv_user's instance trapped.
SELECT wasm.load('priv_state', wasm.wat('(module (global $n (mut i32) (i32.const 0))
  (func (export "bump") (result i32) global.get $n i32.const 1 i32.add global.set $n global.get $n)
  (func (export "trap") unreachable))'));
CREATE FUNCTION public.ps_bump() RETURNS int LANGUAGE wasm AS 'priv_state:bump';
CREATE FUNCTION public.ps_trap() RETURNS void LANGUAGE wasm AS 'priv_state:trap';
SELECT public.ps_bump() AS owner_first, public.ps_bump() AS owner_second;
SET ROLE priv_user;
SELECT split_part(sqlstate_of('SELECT public.ps_trap()'), ':', 1) AS user_trap;
RESET ROLE;
SELECT public.ps_bump() AS owner_third;
DROP FUNCTION public.ps_bump(), public.ps_trap();
SELECT wasm.unload('priv_state');

REVOKE CREATE ON SCHEMA public FROM priv_user, priv_loader_a, priv_loader_b;
DROP ROLE priv_loader_a, priv_loader_b, priv_user;
