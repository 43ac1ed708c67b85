/* plwasm functions in C (udf-sdk/c/plwasm.h). Built and called by the test suite (test sdk). */
#define PLWASM_IMPLEMENTATION
#include "plwasm.h"

/* c_mean(float8[]) -> float8: the mean of a packed float8 array; NULL when empty. */
PLWASM_EXPORT(c_mean) double c_mean(const double *xs, int32_t len) {
    int32_t n = len / (int32_t)sizeof(double);
    if (n == 0) {
        plwasm_return_null();
        return 0;
    }
    double sum = 0;
    for (int32_t i = 0; i < n; i++) sum += xs[i];
    return sum / n;
}
PLWASM_DESCRIBE("{\"name\":\"c_mean\",\"export\":\"c_mean\",\"args\":[{\"name\":\"xs\",\"type\":\"double precision[]\"}],\"returns\":\"double precision\",\"strict\":true,\"volatility\":\"immutable\"}\n");

/* c_reverse(text) -> text: reverses the bytes of ASCII text; other text is an ERROR 22021. */
PLWASM_EXPORT(c_reverse) int64_t c_reverse(const char *s, int32_t len) {
    char *out = malloc(len ? (size_t)len : 1);
    for (int32_t i = 0; i < len; i++) {
        if ((unsigned char)s[i] >= 0x80) plwasm_error_code("22021", "c_reverse takes ASCII text only");
        out[len - 1 - i] = s[i];
    }
    int64_t result = plwasm_result_copy(out, (size_t)len);
    free(out);
    return result;
}
PLWASM_DESCRIBE("{\"name\":\"c_reverse\",\"export\":\"c_reverse\",\"args\":[{\"name\":\"s\",\"type\":\"text\"}],\"returns\":\"text\",\"strict\":true,\"volatility\":\"immutable\"}\n");

/* c_clamp(int4, int4, int4) -> int4, logging a NOTICE when it clamps. */
PLWASM_EXPORT(c_clamp) int32_t c_clamp(int32_t x, int32_t lo, int32_t hi) {
    if (x < lo || x > hi) plwasm_log(PLWASM_NOTICE, "c_clamp: value clamped");
    return x < lo ? lo : x > hi ? hi : x;
}
PLWASM_DESCRIBE("{\"name\":\"c_clamp\",\"export\":\"c_clamp\",\"args\":[{\"name\":\"x\",\"type\":\"integer\"},{\"name\":\"lo\",\"type\":\"integer\"},{\"name\":\"hi\",\"type\":\"integer\"}],\"returns\":\"integer\",\"strict\":true,\"volatility\":\"immutable\"}\n");

/* c_guard() RETURNS trigger: skips row DELETEs (with a NOTICE) and refuses TRUNCATE (25006);
 * everything else goes on unchanged. */
PLWASM_EXPORT(c_guard) int64_t c_guard(const char *event, int32_t len) {
    char operation[16], table[64], message[128];
    plwasm_event_string(event, len, "event", operation, sizeof operation);
    plwasm_event_string(event, len, "table", table, sizeof table);
    if (strcmp(operation, "TRUNCATE") == 0) {
        strcpy(message, "c_guard: table ");
        strcat(message, table);
        strcat(message, " cannot be truncated");
        plwasm_error_code("25006", message);
    }
    if (strcmp(operation, "DELETE") == 0) {
        plwasm_log(PLWASM_NOTICE, "c_guard: delete skipped");
        return plwasm_trigger_skip();
    }
    return PLWASM_TRIGGER_UNCHANGED;
}
PLWASM_DESCRIBE("{\"name\":\"c_guard\",\"export\":\"c_guard\",\"args\":[],\"returns\":\"trigger\",\"strict\":false,\"volatility\":\"volatile\"}\n");

/* c_query(sql text) -> text: the rows of a read-only query as JSON (needs the query capability). */
PLWASM_EXPORT(c_query) int64_t c_query(const char *sql, int32_t len) {
    char *statement = malloc((size_t)len + 1);
    if (!statement) plwasm_error_code("53200", "out of memory in the module");
    memcpy(statement, sql, (size_t)len);
    statement[len] = '\0';
    char *rows = plwasm_query(statement, NULL);
    int64_t result = plwasm_result_copy(rows, strlen(rows));
    free(rows);
    free(statement);
    return result;
}
PLWASM_DESCRIBE("{\"name\":\"c_query\",\"export\":\"c_query\",\"args\":[{\"name\":\"sql\",\"type\":\"text\"}],\"returns\":\"text\",\"strict\":true,\"volatility\":\"volatile\"}\n");
