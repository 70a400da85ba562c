#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "describe.h"
#include "jsonpos.h"

/* The import of one document. */
typedef struct st_import_t {
    const char *name;
    gw_error_t *err;
    json_t *lookup_codes;   /* borrowed from the lookups file: name -> [codes] */
    json_t *lookup_attrs;   /* borrowed: "Attr" or "resource.Attr" -> lookup name */
    json_t *used_attrs;     /* keys of lookup_attrs that matched an attribute */
    json_t *lookups;        /* output */
    json_t *schemas;        /* output */
    json_t *routes;         /* output */
} import_t;

static void __attribute__((format(printf, 3, 4))) fail(import_t *im, const gw_buf_t *pointer, const char *fmt, ...)
{
    char msg[600];
    va_list args;
    va_start(args, fmt);
    vsnprintf(msg, sizeof(msg), fmt, args);
    va_end(args);
    gw_error_set(im->err, "%s: %s: %s", im->name, pointer->len != 0 ? pointer->base : "/", msg);
}

/* Appends "/token" to a pointer and returns the previous length, to restore it with ptr->len = mark. */
static size_t enter(gw_buf_t *ptr, const char *token)
{
    size_t mark = ptr->len;
    gw_buf_append(ptr, "/", 1);
    gw_json_pointer_append_token(ptr, token, strlen(token));
    return mark;
}

static size_t enter_index(gw_buf_t *ptr, size_t index)
{
    size_t mark = ptr->len;
    gw_buf_printf(ptr, "/%zu", index);
    return mark;
}

static void leave(gw_buf_t *ptr, size_t mark)
{
    ptr->len = mark;
    if (ptr->base != NULL)
        ptr->base[mark] = '\0';
}

/* ---- attributes --------------------------------------------------------- */

static const char *map_type(const char *type, json_t *precision)
{
    if (strcmp(type, "string") == 0)
        return "string";
    if (strcmp(type, "integer") == 0)
        /* an integer with at most 9 digits fits int32; without a precision, int64 is the safe side */
        return json_is_integer(precision) && json_integer_value(precision) > 0 && json_integer_value(precision) <= 9 ? "int32"
                                                                                                                    : "int64";
    if (strcmp(type, "number") == 0)
        return "number";
    if (strcmp(type, "boolean") == 0)
        return "bool";
    if (strcmp(type, "date") == 0)
        return "date";
    if (strcmp(type, "datetime") == 0 || strcmp(type, "timestamp") == 0)
        return "datetime";
    return NULL;
}

/* maxLength is a string in describe ("30"); a number is accepted too. Returns -1 when absent, -2 when invalid. */
static json_int_t parse_length(json_t *v)
{
    if (v == NULL || json_is_null(v))
        return -1;
    if (json_is_integer(v))
        return json_integer_value(v) >= 0 ? json_integer_value(v) : -2;
    if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > 10)
        return -2;
    const char *s = json_string_value(v);
    json_int_t n = 0;
    for (; *s != '\0'; ++s) {
        if (*s < '0' || *s > '9')
            return -2;
        n = n * 10 + (*s - '0');
    }
    return n;
}

static int is_true(json_t *obj, const char *key)
{
    return json_is_true(json_object_get(obj, key));
}

/* The lookup the lookups file assigns to resource.attr (or attr), or NULL. */
static const char *lookup_for(import_t *im, const char *resource, const char *attr)
{
    if (im->lookup_attrs == NULL)
        return NULL;
    char key[512];
    snprintf(key, sizeof(key), "%s.%s", resource, attr);
    json_t *v = json_object_get(im->lookup_attrs, key);
    if (v == NULL)
        v = json_object_get(im->lookup_attrs, attr), snprintf(key, sizeof(key), "%s", attr);
    if (v == NULL)
        return NULL;
    json_object_set_new(im->used_attrs, key, json_true());
    return json_string_value(v);
}

static int convert_attribute(import_t *im, const char *resource, json_t *attr, gw_buf_t *ptr, json_t *fields)
{
    if (!json_is_object(attr)) {
        fail(im, ptr, "an attribute must be an object");
        return -1;
    }
    json_t *name = json_object_get(attr, "name"), *type = json_object_get(attr, "type");
    if (!json_is_string(name) || json_string_length(name) == 0) {
        fail(im, ptr, "an attribute without a name");
        return -1;
    }
    const char *attr_name = json_string_value(name);
    if (json_object_get(fields, attr_name) != NULL) {
        fail(im, ptr, "attribute \"%s\" is described twice", attr_name);
        return -1;
    }
    size_t mark = enter(ptr, "type");
    if (!json_is_string(type)) {
        fail(im, ptr, "attribute \"%s\" has no type", attr_name);
        return -1;
    }
    const char *mapped = map_type(json_string_value(type), json_object_get(attr, "precision"));
    if (mapped == NULL) {
        fail(im, ptr, "attribute \"%s\" has an unknown type \"%s\" (known: string, integer, number, boolean, date, datetime, "
                      "timestamp)",
             attr_name, json_string_value(type));
        return -1;
    }
    leave(ptr, mark);
    json_t *field = json_object();
    json_object_set_new(field, "type", json_string(mapped));
    if (strcmp(mapped, "string") == 0) {
        /* a string without maxLength may carry its length in precision */
        json_t *length = json_object_get(attr, "maxLength");
        const char *key = "maxLength";
        if (length == NULL || json_is_null(length))
            length = json_object_get(attr, "precision"), key = "precision";
        json_int_t n = parse_length(length);
        if (n == -2) {
            mark = enter(ptr, key);
            fail(im, ptr, "attribute \"%s\": %s must be a number of characters such as \"30\"", attr_name, key);
            json_decref(field);
            return -1;
        }
        if (n >= 0)
            json_object_set_new(field, "maxLength", json_integer(n));
    }
    /* updatable:false is read-only, except what may be given on create (allowChanges:inCreate) */
    json_t *changes = json_object_get(attr, "allowChanges");
    const char *allow = json_is_string(changes) ? json_string_value(changes) : "";
    int create_only = strcmp(allow, "inCreate") == 0;
    int read_only = !create_only && (strcmp(allow, "never") == 0 || json_is_false(json_object_get(attr, "updatable")));
    if (read_only)
        json_object_set_new(field, "readOnly", json_true());
    if (create_only)
        json_object_set_new(field, "createOnly", json_true());
    /* mandatory is also true for keys the server generates: those have a default */
    if (is_true(attr, "mandatory") && !read_only && json_object_get(attr, "defaultValue") == NULL &&
        !is_true(attr, "hasDefaultValueExpression"))
        json_object_set_new(field, "required", json_true());
    const char *lookup = lookup_for(im, resource, attr_name);
    if (lookup != NULL) {
        if (strcmp(mapped, "string") != 0) {
            fail(im, ptr, "the lookups file assigns lookup %s to \"%s\", which is not a string", lookup, attr_name);
            json_decref(field);
            return -1;
        }
        json_object_set_new(field, "lookup", json_string(lookup));
        json_object_set(im->lookups, lookup, json_object_get(im->lookup_codes, lookup));
    }
    json_object_set_new(fields, attr_name, field);
    return 0;
}

/* ---- resources ---------------------------------------------------------- */

static const char *schema_name(import_t *im, const char *parent, const char *name, gw_buf_t *tmp)
{
    tmp->len = 0;
    if (json_object_get(im->schemas, name) == NULL) {
        gw_buf_appendz(tmp, name);
    } else {
        gw_buf_printf(tmp, "%s.%s", parent, name); /* two children of the same name under different parents */
        for (int n = 2; json_object_get(im->schemas, tmp->base) != NULL; ++n) {
            tmp->len = 0;
            gw_buf_printf(tmp, "%s.%s%d", parent, name, n);
        }
    }
    return tmp->base;
}

/* A resource or child name becomes a segment of a route path: only URI-unreserved characters keep it one literal
 * segment (a '{' would open a parameter, a '/' add a segment). Oracle's names are identifiers. Returns 0 if usable. */
static int check_resource_name(import_t *im, const gw_buf_t *ptr, const char *name)
{
    if (name[0] == '\0') {
        fail(im, ptr, "a resource with an empty name");
        return -1;
    }
    for (const char *c = name; *c != '\0'; ++c) {
        if (!(('a' <= *c && *c <= 'z') || ('A' <= *c && *c <= 'Z') || ('0' <= *c && *c <= '9') || *c == '_' ||
              *c == '-' || *c == '.' || *c == '~')) {
            fail(im, ptr, "resource name \"%.64s\" cannot be a URL path segment (letters, digits, _ - . ~ only)", name);
            return -1;
        }
    }
    return 0;
}

static void add_route(import_t *im, const char *method, const char *path, const char *schema, const char *operation)
{
    json_array_append_new(im->routes,
                          json_pack("{s:s, s:s, s:s, s:s}", "method", method, "path", path, "schema", schema, "operation", operation));
}

static int convert_resource(import_t *im, const char *parent, const char *name, json_t *res, const char *collection_path,
                            int depth, gw_buf_t *ptr);

static int convert_children(import_t *im, const char *schema, json_t *children, const char *item_path, int depth,
                            gw_buf_t *ptr, json_t *fields)
{
    if (!json_is_object(children)) {
        fail(im, ptr, "\"children\" must be an object keyed by child name");
        return -1;
    }
    const char *child;
    json_t *desc;
    json_object_foreach(children, child, desc)
    {
        size_t mark = enter(ptr, child);
        if (check_resource_name(im, ptr, child) != 0)
            return -1;
        json_t *field = json_object();
        json_object_set_new(field, "type", json_string("array"));
        json_object_set_new(fields, child, field);
        /* without includeChildren=true a child carries only links: it is an array of unknown items */
        if (json_is_object(desc) && json_object_get(desc, "attributes") != NULL) {
            gw_buf_t path = GW_BUF_INIT, child_schema = GW_BUF_INIT;
            gw_buf_printf(&path, "%s/child/%s", item_path, child);
            schema_name(im, schema, child, &child_schema);
            json_object_set_new(field, "items", json_string(child_schema.base));
            int ret = convert_resource(im, schema, child_schema.base, desc, path.base, depth + 1, ptr);
            gw_buf_dispose(&path);
            gw_buf_dispose(&child_schema);
            if (ret != 0)
                return -1;
        }
        leave(ptr, mark);
    }
    return 0;
}

static int convert_resource(import_t *im, const char *parent, const char *name, json_t *res, const char *collection_path,
                            int depth, gw_buf_t *ptr)
{
    if (!json_is_object(res)) {
        fail(im, ptr, "a resource description must be an object");
        return -1;
    }
    json_t *attributes = json_object_get(res, "attributes");
    if (!json_is_array(attributes)) {
        fail(im, ptr, "no \"attributes\" list (describe with includeChildren=true to import children)");
        return -1;
    }
    json_t *schema = json_object(), *fields = json_object();
    json_object_set_new(schema, "description",
                        json_string(json_is_string(json_object_get(res, "title")) ? json_string_value(json_object_get(res, "title"))
                                                                                : name));
    json_object_set_new(schema, "unknown-fields", json_string("reject"));
    json_object_set_new(schema, "fields", fields);
    json_object_set_new(im->schemas, name, schema); /* reserved now: children of the same name get another */
    size_t mark = enter(ptr, "attributes");
    size_t i;
    json_t *attr;
    json_array_foreach(attributes, i, attr)
    {
        size_t m = enter_index(ptr, i);
        if (convert_attribute(im, name, attr, ptr, fields) != 0)
            return -1;
        leave(ptr, m);
    }
    leave(ptr, mark);
    /* ADF puts links on every item; describe does not list them, but a client echoing an item sends them back */
    if (json_object_get(fields, "links") == NULL)
        json_object_set_new(fields, "links", json_pack("{s:s, s:b}", "type", "array", "readOnly", 1));

    gw_buf_t item_path = GW_BUF_INIT;
    gw_buf_printf(&item_path, "%s/{id%d}", collection_path, depth);
    add_route(im, "POST", collection_path, name, "create");
    add_route(im, "PATCH", item_path.base, name, "update");
    json_t *children = json_object_get(res, "children");
    int ret = 0;
    if (children != NULL) {
        mark = enter(ptr, "children");
        ret = convert_children(im, name, children, item_path.base, depth, ptr, fields);
        leave(ptr, mark);
    }
    gw_buf_dispose(&item_path);
    return ret;
}

/* ---- documents ---------------------------------------------------------- */

static json_t *load(const char *name, const char *text, size_t len, gw_error_t *err)
{
    json_error_t jerr;
    json_t *doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (doc == NULL)
        gw_error_set(err, "%s:%d:%d: not valid JSON: %s", name, jerr.line, jerr.column, jerr.text);
    return doc;
}

static int read_lookups_file(import_t *im, const char *name, json_t *doc)
{
    gw_buf_t ptr = GW_BUF_INIT;
    import_t sub = *im;
    sub.name = name;
    int ret = -1;
    im->lookup_codes = json_object_get(doc, "lookups");
    im->lookup_attrs = json_object_get(doc, "attributes");
    const char *key;
    json_t *v;
    if (!json_is_object(doc) || !json_is_object(im->lookup_codes) || !json_is_object(im->lookup_attrs)) {
        fail(&sub, &ptr, "a lookups file is {\"lookups\": {NAME: [codes]}, \"attributes\": {\"Attr\" or \"resource.Attr\": NAME}}");
        goto Exit;
    }
    json_object_foreach(im->lookup_codes, key, v)
    {
        size_t mark = enter(&ptr, "lookups");
        enter(&ptr, key);
        size_t i;
        json_t *code;
        if (!json_is_array(v) || json_array_size(v) == 0) {
            fail(&sub, &ptr, "a lookup must be a non-empty array of codes");
            goto Exit;
        }
        json_array_foreach(v, i, code)
        {
            if (!json_is_string(code) || json_string_length(code) == 0) {
                enter_index(&ptr, i);
                fail(&sub, &ptr, "a code must be a non-empty string");
                goto Exit;
            }
        }
        leave(&ptr, mark);
    }
    json_object_foreach(im->lookup_attrs, key, v)
    {
        if (!json_is_string(v) || json_object_get(im->lookup_codes, json_string_value(v)) == NULL) {
            enter(&ptr, "attributes");
            enter(&ptr, key);
            fail(&sub, &ptr, "names no lookup defined under /lookups");
            goto Exit;
        }
    }
    ret = 0;
Exit:
    gw_buf_dispose(&ptr);
    return ret;
}

/* Every attribute mapping must have matched something: a typo would silently drop a lookup. */
static int check_mappings_used(import_t *im, const char *lookups_name)
{
    const char *key;
    json_t *v;
    if (im->lookup_attrs == NULL)
        return 0;
    json_object_foreach(im->lookup_attrs, key, v)
    {
        if (json_object_get(im->used_attrs, key) == NULL) {
            gw_error_set(im->err, "%s: /attributes/%s: matches no attribute of the describe document", lookups_name, key);
            return -1;
        }
    }
    return 0;
}

int gw_describe_import(const char *name, const char *describe, size_t len, const char *lookups_name, const char *lookups,
                       size_t lookups_len, gw_buf_t *out, gw_error_t *err)
{
    import_t im = {.name = name, .err = err, .used_attrs = json_object(), .lookups = json_object(),
                   .schemas = json_object(), .routes = json_array()};
    json_t *doc = NULL, *lookups_doc = NULL, *rules = NULL;
    gw_buf_t ptr = GW_BUF_INIT;
    int ret = -1;

    if (lookups != NULL &&
        ((lookups_doc = load(lookups_name, lookups, lookups_len, err)) == NULL || read_lookups_file(&im, lookups_name, lookups_doc) != 0))
        goto Exit;
    if ((doc = load(name, describe, len, err)) == NULL)
        goto Exit;
    json_t *resources = json_is_object(doc) ? json_object_get(doc, "Resources") : NULL;
    if (!json_is_object(resources) || json_object_size(resources) == 0) {
        fail(&im, &ptr, "no \"Resources\" object: is this the output of GET .../describe?");
        goto Exit;
    }
    enter(&ptr, "Resources");
    const char *resource;
    json_t *desc;
    json_object_foreach(resources, resource, desc)
    {
        size_t mark = enter(&ptr, resource);
        if (check_resource_name(&im, &ptr, resource) != 0)
            goto Exit;
        gw_buf_t path = GW_BUF_INIT;
        gw_buf_printf(&path, "/crmRestApi/resources/{version}/%s", resource);
        int failed = convert_resource(&im, "", resource, desc, path.base, 1, &ptr) != 0;
        gw_buf_dispose(&path);
        if (failed)
            goto Exit;
        leave(&ptr, mark);
    }
    if (check_mappings_used(&im, lookups_name) != 0)
        goto Exit;

    rules = json_object();
    json_object_set_new(rules, "crmgate-rules", json_integer(1));
    gw_buf_t description = GW_BUF_INIT;
    gw_buf_printf(&description, "Imported from %s by crmgate rules import-describe%s%s", name,
                  lookups != NULL ? " with lookups from " : "", lookups != NULL ? lookups_name : "");
    json_object_set_new(rules, "description", json_string(description.base));
    gw_buf_dispose(&description);
    json_object_set_new(rules, "length-unit", json_string("characters"));
    json_object_set_new(rules, "params", json_pack("{s:s}", "version", "[0-9]+(?:\\.[0-9]+)*|latest"));
    json_object_set(rules, "lookups", im.lookups);
    json_object_set(rules, "schemas", im.schemas);
    json_object_set(rules, "routes", im.routes);
    char *text = json_dumps(rules, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (text == NULL)
        gw_fatal("out of memory (import)");
    gw_buf_appendz(out, text);
    gw_buf_append(out, "\n", 1);
    free(text);
    ret = 0;
Exit:
    gw_buf_dispose(&ptr);
    json_decref(rules);
    json_decref(doc);
    json_decref(lookups_doc);
    json_decref(im.used_attrs);
    json_decref(im.lookups);
    json_decref(im.schemas);
    json_decref(im.routes);
    return ret;
}
