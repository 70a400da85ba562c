/*
 * The compiled rule set as data: its canonical JSON form (what the digest is
 * computed over) and the listing of `crmgate rules show`. Both walk the
 * compiled structures, so they show what is enforced, not what was written.
 */
#include <inttypes.h>
#include <string.h>
#include <jansson.h>
#include "buf.h"
#include "rules.h"

/* The kinds a mode can be set for on a field (unknown fields and headers belong to the schema and route). */
static int applies_to_fields(int kind)
{
    return kind != GW_KIND_UNKNOWN && kind != GW_KIND_HEADERS && kind != GW_KIND_STRUCTURE;
}

/* Whether a field has a rule of this kind at all: only those modes are worth showing. */
static int has_rule_of_kind(const gw_field_t *f, int kind)
{
    switch (kind) {
    case GW_KIND_MAX_LENGTH:
        return f->max_length >= 0;
    case GW_KIND_READ_ONLY:
        return f->read_only;
    case GW_KIND_CREATE_ONLY:
        return f->create_only;
    case GW_KIND_LOOKUP:
        return f->lookup != NULL;
    case GW_KIND_PATTERN:
        return f->pattern != NULL;
    case GW_KIND_REQUIRED:
        return f->required;
    case GW_KIND_TYPE:
        return f->type != GW_TYPE_ANY;
    default:
        return 0;
    }
}

/* Modes other than enforce, by rule kind; NULL when every kind enforces. */
static json_t *modes_json(const gw_mode_t *modes, int for_field)
{
    json_t *obj = NULL;
    for (int k = 0; k < GW_KIND__COUNT; ++k) {
        if (modes[k] == GW_MODE_ENFORCE || (for_field && !applies_to_fields(k)))
            continue;
        if (obj == NULL)
            obj = json_object();
        json_object_set_new(obj, gw_rule_kind_name((gw_rule_kind_t)k), json_string(gw_mode_name(modes[k])));
    }
    return obj;
}

static json_t *field_json(const gw_field_t *f)
{
    json_t *obj = json_object();
    json_object_set_new(obj, "type", json_string(gw_field_type_name(f->type)));
    if (f->max_length >= 0)
        json_object_set_new(obj, "maxLength", json_integer(f->max_length));
    if (f->read_only)
        json_object_set_new(obj, "readOnly", json_true());
    if (f->create_only)
        json_object_set_new(obj, "createOnly", json_true());
    if (f->required)
        json_object_set_new(obj, "required", json_true());
    if (f->lookup != NULL)
        json_object_set_new(obj, "lookup", json_string(f->lookup->name));
    if (f->pattern_source != NULL)
        json_object_set_new(obj, "pattern", json_string(f->pattern_source));
    if (f->schema != NULL)
        json_object_set_new(obj, f->type == GW_TYPE_ARRAY ? "items" : "schema", json_string(f->schema->name));
    json_t *modes = modes_json(f->modes, 1);
    if (modes != NULL)
        json_object_set_new(obj, "modes", modes);
    return obj;
}

static json_t *schema_json(const gw_schema_t *schema)
{
    json_t *obj = json_object(), *fields = json_object();
    json_object_set_new(obj, "unknown-fields", json_string(gw_unknown_policy_name(schema->unknown)));
    json_object_set_new(obj, "length-unit", json_string(gw_length_unit_name(schema->length_unit)));
    json_t *modes = modes_json(schema->modes, 0);
    if (modes != NULL)
        json_object_set_new(obj, "modes", modes);
    for (size_t i = 0; i < schema->nfields; ++i)
        json_object_set_new(fields, schema->fields[i].name, field_json(&schema->fields[i]));
    json_object_set_new(obj, "fields", fields);
    return obj;
}

json_t *gw_ruleset_canonical(const gw_ruleset_t *rules)
{
    json_t *files = json_array();
    for (size_t i = 0; i < gw_ruleset_file_count(rules); ++i) {
        const gw_rule_file_t *file = gw_ruleset_file(rules, i);
        json_t *obj = json_object(), *params = json_object(), *lookups = json_object(), *schemas = json_object(),
               *routes = json_array();
        for (size_t p = 0; p < file->nparams; ++p)
            json_object_set_new(params, file->param_names[p], json_string(file->param_patterns[p]));
        for (size_t l = 0; l < file->nlookups; ++l) {
            json_t *codes = json_array();
            for (size_t c = 0; c < file->lookups[l].ncodes; ++c)
                json_array_append_new(codes, json_string(file->lookups[l].codes[c]));
            json_object_set_new(lookups, file->lookups[l].name, codes);
        }
        for (size_t s = 0; s < file->nschemas; ++s)
            json_object_set_new(schemas, file->schemas[s].name, schema_json(&file->schemas[s]));
        for (size_t r = 0; r < gw_ruleset_route_count(rules); ++r) {
            const gw_route_t *route = gw_ruleset_route(rules, r);
            if (route->file != file->path)
                continue;
            json_array_append_new(routes, json_pack("{s:s, s:s, s:s, s:s}", "method", route->method, "path", route->path,
                                                    "schema", route->schema->name, "operation",
                                                    route->operation == GW_OP_CREATE ? "create" : "update"));
        }
        json_object_set_new(obj, "params", params);
        json_object_set_new(obj, "lookups", lookups);
        json_object_set_new(obj, "schemas", schemas);
        json_object_set_new(obj, "routes", routes);
        json_array_append_new(files, obj);
    }
    json_t *doc = json_object();
    json_object_set_new(doc, "crmgate-rules", json_integer(1));
    json_object_set_new(doc, "files", files);
    return doc;
}

/* ---- the listing -------------------------------------------------------- */

static void show_field(const gw_field_t *f, gw_buf_t *out)
{
    gw_buf_printf(out, "    %-32s %s", f->name, gw_field_type_name(f->type));
    if (f->type == GW_TYPE_ARRAY && f->schema != NULL)
        gw_buf_printf(out, " of %s", f->schema->name);
    if (f->type == GW_TYPE_OBJECT && f->schema != NULL)
        gw_buf_printf(out, " %s", f->schema->name);
    if (f->max_length >= 0)
        gw_buf_printf(out, "  maxLength %" PRId64, f->max_length);
    if (f->read_only)
        gw_buf_appendz(out, "  read-only");
    if (f->create_only)
        gw_buf_appendz(out, "  create-only");
    if (f->required)
        gw_buf_appendz(out, "  required");
    if (f->lookup != NULL)
        gw_buf_printf(out, "  lookup %s", f->lookup->name);
    if (f->pattern_source != NULL)
        gw_buf_printf(out, "  pattern /%s/", f->pattern_source);
    for (int k = 0; k < GW_KIND__COUNT; ++k)
        if (f->modes[k] != GW_MODE_ENFORCE && has_rule_of_kind(f, k))
            gw_buf_printf(out, "  %s:%s", gw_rule_kind_name((gw_rule_kind_t)k), gw_mode_name(f->modes[k]));
    gw_buf_appendz(out, "\n");
}

static void show_file(const gw_ruleset_t *rules, const gw_rule_file_t *file, gw_buf_t *out)
{
    gw_buf_printf(out, "\nfile %s (length unit %s, mode %s)\n", file->path, gw_length_unit_name(file->length_unit),
                  gw_mode_name(file->mode));
    for (size_t p = 0; p < file->nparams; ++p)
        gw_buf_printf(out, "  param {%s} = /%s/\n", file->param_names[p], file->param_patterns[p]);
    for (size_t r = 0; r < gw_ruleset_route_count(rules); ++r) {
        const gw_route_t *route = gw_ruleset_route(rules, r);
        if (route->file == file->path)
            gw_buf_printf(out, "  %-5s %s -> %s (%s)\n", route->method, route->path, route->schema->name,
                          route->operation == GW_OP_CREATE ? "create" : "update");
    }
    for (size_t l = 0; l < file->nlookups; ++l) {
        gw_buf_printf(out, "  lookup %s:", file->lookups[l].name);
        for (size_t c = 0; c < file->lookups[l].ncodes; ++c)
            gw_buf_printf(out, " %s", file->lookups[l].codes[c]);
        gw_buf_appendz(out, "\n");
    }
    for (size_t s = 0; s < file->nschemas; ++s) {
        const gw_schema_t *schema = &file->schemas[s];
        gw_buf_printf(out, "  schema %s (unknown fields: %s", schema->name, gw_unknown_policy_name(schema->unknown));
        if (schema->unknown == GW_UNKNOWN_REJECT && schema->modes[GW_KIND_UNKNOWN] != GW_MODE_ENFORCE)
            gw_buf_printf(out, " in %s mode", gw_mode_name(schema->modes[GW_KIND_UNKNOWN]));
        gw_buf_appendz(out, ")\n");
        for (size_t i = 0; i < schema->nfields; ++i)
            show_field(&schema->fields[i], out);
    }
}

void gw_ruleset_show(const gw_ruleset_t *rules, gw_buf_t *out)
{
    size_t nschemas = 0, nlookups = 0;
    for (size_t i = 0; i < gw_ruleset_file_count(rules); ++i) {
        nschemas += gw_ruleset_file(rules, i)->nschemas;
        nlookups += gw_ruleset_file(rules, i)->nlookups;
    }
    gw_buf_printf(out, "rule set %s\n  %zu routes, %zu schemas, %zu lookups, from %zu file(s)\n", gw_ruleset_digest(rules),
                  gw_ruleset_route_count(rules), nschemas, nlookups, gw_ruleset_file_count(rules));
    for (size_t i = 0; i < gw_ruleset_file_count(rules); ++i)
        show_file(rules, gw_ruleset_file(rules, i), out);
}
