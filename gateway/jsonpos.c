#include <string.h>
#include <jansson.h>
#include "jsonpos.h"

#define MAX_LEVELS 64

typedef struct st_level_t {
    int is_array;
    size_t index;          /* arrays: the element being read */
    const char *key;       /* objects: raw bytes of the current key, between the quotes */
    size_t key_len;
    int has_key;
} level_t;

void gw_json_pointer_append_token(gw_buf_t *out, const char *token, size_t len)
{
    for (size_t i = 0; i < len; ++i) {
        if (token[i] == '~')
            gw_buf_append(out, "~0", 2);
        else if (token[i] == '/')
            gw_buf_append(out, "~1", 2);
        else
            gw_buf_append(out, &token[i], 1);
    }
}

/* Appends a key: decoded from its JSON escapes when it is valid, else as raw bytes. */
static void append_key(gw_buf_t *out, const char *raw, size_t len)
{
    if (memchr(raw, '\\', len) == NULL) {
        gw_json_pointer_append_token(out, raw, len);
        return;
    }
    gw_buf_t quoted = GW_BUF_INIT;
    gw_buf_append(&quoted, "\"", 1);
    gw_buf_append(&quoted, raw, len);
    gw_buf_append(&quoted, "\"", 1);
    json_t *s = json_loadb(quoted.base, quoted.len, JSON_DECODE_ANY, NULL);
    if (s != NULL && json_is_string(s))
        gw_json_pointer_append_token(out, json_string_value(s), json_string_length(s));
    else
        gw_json_pointer_append_token(out, raw, len);
    json_decref(s);
    gw_buf_dispose(&quoted);
}

/* Skips a string starting after its opening quote; returns the offset of the closing quote (or end). */
static size_t skip_string(const char *json, size_t i, size_t end)
{
    while (i < end && json[i] != '"')
        i += json[i] == '\\' ? 2 : 1;
    return i < end ? i : end;
}

void gw_json_pointer_at(const char *json, size_t len, size_t offset, gw_buf_t *out)
{
    level_t levels[MAX_LEVELS];
    size_t depth = 0; /* may exceed MAX_LEVELS: deeper levels are counted, not kept */
    size_t end = offset < len ? offset : len;

    for (size_t i = 0; i < end; ++i) {
        level_t *top = depth > 0 && depth <= MAX_LEVELS ? &levels[depth - 1] : NULL;
        switch (json[i]) {
        case '{':
        case '[':
            if (depth < MAX_LEVELS)
                levels[depth] = (level_t){.is_array = json[i] == '['};
            ++depth;
            break;
        case '}':
        case ']':
            if (depth > 0)
                --depth;
            break;
        case ',':
            if (top != NULL) {
                ++top->index;
                top->has_key = 0;
            }
            break;
        case '"': {
            size_t close = skip_string(json, i + 1, end);
            /* a key cut off by the offset is the one being read, and cannot name the member yet */
            if (top != NULL && !top->is_array && !top->has_key && close < end) {
                /* a key: it names the member even while its value is being read */
                top->key = json + i + 1;
                top->key_len = close - (i + 1);
                top->has_key = 1;
            }
            i = close;
            break;
        }
        default:
            break;
        }
    }
    size_t kept = depth < MAX_LEVELS ? depth : MAX_LEVELS;
    for (size_t d = 0; d < kept; ++d) {
        if (levels[d].is_array) {
            gw_buf_printf(out, "/%zu", levels[d].index);
        } else if (levels[d].has_key) {
            gw_buf_append(out, "/", 1);
            append_key(out, levels[d].key, levels[d].key_len);
        }
    }
}
