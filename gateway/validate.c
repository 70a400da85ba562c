#include <string.h>
#include "buf.h"
#include "jsonpos.h"
#include "validate.h"

#define GW_EXCERPT_CHARS 40
/* A walk never goes deeper than max_depth (at most GW_MAX_DEPTH_LIMIT), plus one array index: every level of a
 * document within the limit is validated, never skipped for want of room. */
#define GW_MAX_PATH (GW_MAX_DEPTH_LIMIT + 2)

typedef struct st_path_elem_t {
    const char *key; /* NULL for an array index */
    size_t key_len;
    size_t index;
} path_elem_t;

typedef struct st_walk_t {
    const gw_validate_params_t *params;
    gw_violations_t *list;
    path_elem_t path[GW_MAX_PATH];
    size_t depth;
    int too_deep_reported;
} walk_t;

void gw_violations_init(gw_violations_t *list, gw_arena_t *arena, size_t max)
{
    memset(list, 0, sizeof(*list));
    list->arena = arena;
    list->max = max;
}

/* 413 and 415 say more than 400: the body was not even judged. */
static int status_rank(int status)
{
    return status == 413 ? 3 : status == 415 ? 2 : 1;
}

static gw_violation_t *stored_report_mode(const gw_violations_t *list)
{
    for (size_t i = list->count; i-- > 0;)
        if (list->items[i].mode != GW_MODE_ENFORCE)
            return &list->items[i];
    return NULL;
}

int gw_violations_has_room(const gw_violations_t *list, gw_mode_t mode)
{
    return list->count < list->max || (mode == GW_MODE_ENFORCE && stored_report_mode(list) != NULL);
}

gw_violation_t *gw_violations_add(gw_violations_t *list, const gw_violation_t *v)
{
    ++list->total;
    if (v->mode == GW_MODE_ENFORCE) {
        int status = gw_violation_status(v->code);
        ++list->enforced;
        if (list->status == 0 || status_rank(status) > status_rank(list->status))
            list->status = status;
    }
    if (list->items == NULL && list->max != 0)
        list->items = gw_arena_alloc(list->arena, list->max * sizeof(*list->items));
    gw_violation_t *slot = NULL;
    if (list->count < list->max)
        slot = &list->items[list->count++];
    else if (v->mode == GW_MODE_ENFORCE)
        slot = stored_report_mode(list); /* the reported one is still counted in total */
    if (slot != NULL)
        *slot = *v;
    return slot;
}

/* ---- building violations ----------------------------------------------- */

static const char *render_pointer(walk_t *w, const char *last_key, size_t last_len)
{
    gw_buf_t ptr = GW_BUF_INIT;
    for (size_t i = 0; i < w->depth; ++i) {
        if (w->path[i].key != NULL) {
            gw_buf_append(&ptr, "/", 1);
            gw_json_pointer_append_token(&ptr, w->path[i].key, w->path[i].key_len);
        } else {
            gw_buf_printf(&ptr, "/%zu", w->path[i].index);
        }
    }
    if (last_key != NULL) {
        gw_buf_append(&ptr, "/", 1);
        gw_json_pointer_append_token(&ptr, last_key, last_len);
    }
    const char *s = gw_arena_strndup(w->list->arena, ptr.base != NULL ? ptr.base : "", ptr.len);
    gw_buf_dispose(&ptr);
    return s;
}

static const char *excerpt(walk_t *w, const char *s, size_t len)
{
    gw_buf_t buf = GW_BUF_INIT;
    gw_buf_append_excerpt(&buf, s, len, GW_EXCERPT_CHARS, 1);
    const char *copy = gw_arena_strndup(w->list->arena, buf.base != NULL ? buf.base : "", buf.len);
    gw_buf_dispose(&buf);
    return copy;
}

static const char *json_kind(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a number with a fraction or exponent";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    case JSON_NULL:
        return "null";
    }
    return "?";
}

/* Adds a violation for the member `key` of the current object (key NULL: the current value itself). */
static gw_violation_t *report(walk_t *w, gw_violation_code_t code, gw_mode_t mode, const char *key, size_t key_len,
                              const char *field)
{
    const gw_policy_t *policy = w->params->policy;
    int by_pointer = policy != NULL && policy->npointers != 0 && code != GW_V_TOO_DEEP;
    if (mode == GW_MODE_OFF && !by_pointer)
        return NULL;
    gw_violation_t v = {.code = code, .mode = mode, .field = field, .limit = -1, .found = -1};
    if (by_pointer) {
        /* the configuration may set this very field's mode: the pointer decides */
        v.pointer = render_pointer(w, key, key_len);
        if ((v.mode = gw_policy_pointer_mode(policy, v.pointer, mode)) == GW_MODE_OFF)
            return NULL;
    } else if (!gw_violations_has_room(w->list, mode)) {
        gw_violations_add(w->list, &v); /* counted, not stored: skip rendering the pointer */
        return NULL;
    } else {
        v.pointer = render_pointer(w, key, key_len);
    }
    return gw_violations_add(w->list, &v);
}

/* ---- depth -------------------------------------------------------------- */

/* The configured limit, never more than the walk's path can hold. */
static size_t depth_limit(const walk_t *w)
{
    return w->params->max_depth < GW_MAX_DEPTH_LIMIT ? w->params->max_depth : GW_MAX_DEPTH_LIMIT;
}

/* Depth of containers below v (v itself counts when it is a container), capped at limit + 1. */
static size_t container_depth(const json_t *v, size_t limit)
{
    if (!json_is_object(v) && !json_is_array(v))
        return 0;
    if (limit == 0)
        return 1;
    size_t deepest = 0;
    if (json_is_object(v)) {
        const char *key;
        json_t *child;
        json_object_foreach((json_t *)v, key, child)
        {
            size_t d = container_depth(child, limit - 1);
            if (d > deepest && (deepest = d) >= limit)
                break;
        }
    } else {
        size_t i;
        json_t *child;
        json_array_foreach(v, i, child)
        {
            size_t d = container_depth(child, limit - 1);
            if (d > deepest && (deepest = d) >= limit)
                break;
        }
    }
    return deepest + 1;
}

/* Unvalidated values (unknown fields, type any) still count towards the depth limit. */
static void check_depth(walk_t *w, const json_t *v, const char *key, size_t key_len)
{
    if (w->too_deep_reported || !(json_is_object(v) || json_is_array(v)))
        return;
    size_t limit = depth_limit(w);
    size_t here = w->depth + 1; /* the object holding v */
    size_t below = container_depth(v, limit >= here ? limit - here : 0);
    if (here + below > limit) {
        gw_violation_t *viol = report(w, GW_V_TOO_DEEP, GW_MODE_ENFORCE, key, key_len, NULL);
        if (viol != NULL)
            viol->limit = (int64_t)limit;
        w->too_deep_reported = 1;
    }
}

/* ---- values ------------------------------------------------------------- */

static int is_digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; ++i)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return 1;
}

static int num(const char *s, size_t n)
{
    int v = 0;
    for (size_t i = 0; i < n; ++i)
        v = v * 10 + (s[i] - '0');
    return v;
}

int gw_is_iso8601(const char *s, size_t len, int with_time)
{
    static const int days[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (len < 10 || !is_digits(s, 4) || s[4] != '-' || !is_digits(s + 5, 2) || s[7] != '-' || !is_digits(s + 8, 2))
        return 0;
    int year = num(s, 4), month = num(s + 5, 2), day = num(s + 8, 2);
    if (month < 1 || month > 12 || day < 1 || day > days[month - 1])
        return 0;
    int leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    if (month == 2 && day == 29 && !leap)
        return 0;
    if (!with_time)
        return len == 10;
    if (len < 19 || s[10] != 'T' || !is_digits(s + 11, 2) || s[13] != ':' || !is_digits(s + 14, 2) || s[16] != ':' ||
        !is_digits(s + 17, 2))
        return 0;
    if (num(s + 11, 2) > 23 || num(s + 14, 2) > 59 || num(s + 17, 2) > 60) /* 60: a leap second */
        return 0;
    size_t i = 19;
    if (i < len && s[i] == '.') {
        size_t start = ++i;
        while (i < len && s[i] >= '0' && s[i] <= '9')
            ++i;
        if (i == start || i - start > 9)
            return 0;
    }
    if (i == len)
        return 1; /* local time: Oracle applies the user's time zone */
    if (s[i] == 'Z')
        return i + 1 == len;
    if ((s[i] == '+' || s[i] == '-') && len - i == 6 && is_digits(s + i + 1, 2) && s[i + 3] == ':' &&
        is_digits(s + i + 4, 2))
        return num(s + i + 1, 2) <= 23 && num(s + i + 4, 2) <= 59;
    return 0;
}

static void validate_object(walk_t *w, const gw_schema_t *schema, const json_t *obj);

static void type_error(walk_t *w, const gw_field_t *f, const json_t *v)
{
    gw_violation_t *viol = report(w, GW_V_TYPE, f->modes[GW_KIND_TYPE], f->name, f->name_len, f->name);
    if (viol != NULL) {
        viol->expected = gw_field_type_name(f->type);
        viol->actual = json_kind(v);
    }
}

static void validate_string(walk_t *w, const gw_schema_t *schema, const gw_field_t *f, const json_t *v)
{
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    /* a string is never longer in characters or UTF-16 units than in bytes: count only when it matters */
    if (f->max_length >= 0 && len > (size_t)f->max_length) {
        size_t n = gw_utf8_length(s, len, schema->length_unit);
        if (n > (size_t)f->max_length) {
            gw_violation_t *viol =
                report(w, GW_V_MAX_LENGTH, f->modes[GW_KIND_MAX_LENGTH], f->name, f->name_len, f->name);
            if (viol != NULL) {
                viol->limit = f->max_length;
                viol->found = (int64_t)n;
                viol->expected = schema->length_unit == GW_LENGTH_CHARACTERS ? "characters"
                                 : schema->length_unit == GW_LENGTH_BYTES   ? "bytes"
                                                                            : "UTF-16 code units";
            }
        }
    }
    /* a check that is off is skipped, unless the configuration may set this field's mode by pointer */
    int pointers = w->params->policy != NULL && w->params->policy->npointers != 0;
    if (f->lookup != NULL && (f->modes[GW_KIND_LOOKUP] != GW_MODE_OFF || pointers) &&
        gw_regex_full_match(f->lookup->re, s, len, w->params->match_data, w->params->match_context) != 1) {
        gw_violation_t *viol = report(w, GW_V_LOOKUP, f->modes[GW_KIND_LOOKUP], f->name, f->name_len, f->name);
        if (viol != NULL) {
            viol->expected = f->lookup->name;
            viol->excerpt = excerpt(w, s, len);
        }
    }
    if (f->pattern != NULL && (f->modes[GW_KIND_PATTERN] != GW_MODE_OFF || pointers) &&
        gw_regex_full_match(f->pattern, s, len, w->params->match_data, w->params->match_context) != 1) {
        /* a match that hits PCRE2's limits is refused too: never forward what was not checked */
        gw_violation_t *viol = report(w, GW_V_PATTERN, f->modes[GW_KIND_PATTERN], f->name, f->name_len, f->name);
        if (viol != NULL) {
            viol->expected = f->pattern_source;
            viol->excerpt = excerpt(w, s, len);
        }
    }
}

static void validate_integer(walk_t *w, const gw_field_t *f, const json_t *v)
{
    if (!json_is_integer(v)) {
        type_error(w, f, v);
        return;
    }
    json_int_t n = json_integer_value(v);
    if (f->type == GW_TYPE_INT32 && (n < INT32_MIN || n > INT32_MAX)) {
        gw_violation_t *viol = report(w, GW_V_NUMBER_RANGE, f->modes[GW_KIND_TYPE], f->name, f->name_len, f->name);
        if (viol != NULL)
            viol->expected = "int32";
    }
}

/* Enters the member `key` (or element `index`) of the current container. */
static int push(walk_t *w, const char *key, size_t key_len, size_t index)
{
    if (w->depth == GW_MAX_PATH)
        return -1;
    w->path[w->depth++] = (path_elem_t){key, key_len, index};
    return 0;
}

/* A container at the current path lies at level depth + 1: over the limit, it is refused and not entered. */
static int over_depth_limit(walk_t *w)
{
    if (w->depth + 1 <= depth_limit(w))
        return 0;
    if (!w->too_deep_reported) {
        gw_violation_t *viol = report(w, GW_V_TOO_DEEP, GW_MODE_ENFORCE, NULL, 0, NULL);
        if (viol != NULL)
            viol->limit = (int64_t)depth_limit(w);
        w->too_deep_reported = 1;
    }
    return 1;
}

static void validate_array(walk_t *w, const gw_field_t *f, const json_t *v)
{
    if (push(w, f->name, f->name_len, 0) != 0)
        return;
    if (over_depth_limit(w)) {
        --w->depth;
        return;
    }
    size_t i;
    json_t *item;
    json_array_foreach(v, i, item)
    {
        if (f->schema == NULL) {
            check_depth(w, item, NULL, 0);
            continue;
        }
        if (push(w, NULL, 0, i) != 0)
            continue;
        if (json_is_object(item)) {
            validate_object(w, f->schema, item);
        } else {
            gw_violation_t *viol = report(w, GW_V_TYPE, f->modes[GW_KIND_TYPE], NULL, 0, f->name);
            if (viol != NULL) {
                viol->expected = "object";
                viol->actual = json_kind(item);
            }
            --w->depth;
            check_depth(w, item, NULL, 0); /* refused or not, it is never deeper than the limit */
            continue;
        }
        --w->depth;
    }
    --w->depth;
}

/* Checks a non-null value whose type needs no descent (an object without schema and "any" only count depth). */
static void validate_scalar(walk_t *w, const gw_schema_t *schema, const gw_field_t *f, const json_t *v)
{
    switch (f->type) {
    case GW_TYPE_ANY:
        break;
    case GW_TYPE_STRING:
        if (!json_is_string(v))
            type_error(w, f, v);
        else
            validate_string(w, schema, f, v);
        break;
    case GW_TYPE_INT32:
    case GW_TYPE_INT64:
        validate_integer(w, f, v);
        break;
    case GW_TYPE_NUMBER:
        if (!json_is_number(v))
            type_error(w, f, v);
        break;
    case GW_TYPE_BOOL:
        if (!json_is_boolean(v))
            type_error(w, f, v);
        break;
    case GW_TYPE_DATETIME:
    case GW_TYPE_DATE:
        if (!json_is_string(v)) {
            type_error(w, f, v);
        } else if (!gw_is_iso8601(json_string_value(v), json_string_length(v), f->type == GW_TYPE_DATETIME)) {
            gw_violation_t *viol = report(w, GW_V_DATETIME, f->modes[GW_KIND_TYPE], f->name, f->name_len, f->name);
            if (viol != NULL) {
                viol->expected = gw_field_type_name(f->type);
                viol->excerpt = excerpt(w, json_string_value(v), json_string_length(v));
            }
        }
        break;
    case GW_TYPE_OBJECT:
        if (!json_is_object(v))
            type_error(w, f, v);
        break;
    case GW_TYPE_ARRAY:
        type_error(w, f, v); /* arrays were entered by the caller */
        break;
    }
}

static void validate_member(walk_t *w, const gw_schema_t *schema, const gw_field_t *f, const json_t *v)
{
    if (f->read_only) {
        report(w, GW_V_READ_ONLY, f->modes[GW_KIND_READ_ONLY], f->name, f->name_len, f->name);
    } else if (f->create_only && w->params->operation == GW_OP_UPDATE) {
        report(w, GW_V_CREATE_ONLY, f->modes[GW_KIND_CREATE_ONLY], f->name, f->name_len, f->name);
    } else if (json_is_null(v)) {
        /* null clears a field; a required one is checked by the object */
    } else if (f->type == GW_TYPE_OBJECT && json_is_object(v) && f->schema != NULL) {
        if (push(w, f->name, f->name_len, 0) == 0) {
            validate_object(w, f->schema, v);
            --w->depth;
        }
        return;
    } else if (f->type == GW_TYPE_ARRAY && json_is_array(v)) {
        validate_array(w, f, v);
        return;
    } else {
        validate_scalar(w, schema, f, v);
    }
    /* whatever else happened to it, a value not entered above still counts towards the depth limit
     * (the limit is structural: it holds in report and off modes too); a scalar adds no depth */
    if (json_is_object(v) || json_is_array(v))
        check_depth(w, v, f->name, f->name_len);
}

static void validate_object(walk_t *w, const gw_schema_t *schema, const json_t *obj)
{
    if (over_depth_limit(w))
        return;
    /* the iterator directly: json_object_foreach looks every key up again to find the next member */
    for (void *it = json_object_iter((json_t *)obj); it != NULL; it = json_object_iter_next((json_t *)obj, it)) {
        const char *key = json_object_iter_key(it);
        size_t key_len = json_object_iter_key_len(it);
        json_t *value = json_object_iter_value(it);
        const gw_field_t *f = gw_schema_find(schema, key, key_len);
        if (f != NULL) {
            validate_member(w, schema, f, value);
            continue;
        }
        if (schema->unknown != GW_UNKNOWN_ALLOW) {
            gw_violation_t *viol =
                report(w, GW_V_UNKNOWN_FIELD, schema->modes[GW_KIND_UNKNOWN], key, key_len, NULL);
            if (viol != NULL) {
                viol->field = excerpt(w, key, key_len);
                viol->expected = schema->name;
            }
        }
        check_depth(w, value, key, key_len);
    }
    if (w->params->operation != GW_OP_CREATE)
        return;
    for (size_t i = 0; i < schema->nrequired; ++i) {
        const gw_field_t *f = schema->required[i];
        json_t *v = json_object_get(obj, f->name);
        if (v == NULL || json_is_null(v)) {
            gw_violation_t *viol = report(w, GW_V_REQUIRED, f->modes[GW_KIND_REQUIRED], f->name, f->name_len, f->name);
            if (viol != NULL)
                viol->actual = v == NULL ? "missing" : "null";
        }
    }
}

void gw_validate_document(const gw_schema_t *schema, const json_t *doc, const gw_validate_params_t *params,
                          gw_violations_t *list)
{
    /* not zero-initialised: the path is written before it is read, and clearing its 24 KB cost more than
     * validating a typical document */
    walk_t w;
    w.params = params;
    w.list = list;
    w.depth = 0;
    w.too_deep_reported = 0;
    validate_object(&w, schema, doc);
}
