/* crmgate rules import-describe: the mapping from ADF describe to rules, bad
 * inputs, stability, and agreement with the shipped rules/interactions.json. */
#include <stdlib.h>
#include <jansson.h>
#include "../../gateway/describe.h"
#include "../../gateway/evaluate.h"
#include "../../gateway/rules.h"
#include "check.h"

static char *slurp(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    if (fp == NULL)
        return NULL;
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    *len = fread(buf, 1, (size_t)n, fp);
    buf[*len] = '\0';
    fclose(fp);
    return buf;
}

static gw_error_t err;

/* Imports a describe document given inline; returns the rule text or NULL (err set). */
static char *import(const char *describe, const char *lookups)
{
    gw_buf_t out = GW_BUF_INIT;
    gw_error_clear(&err);
    if (gw_describe_import("d.json", describe, strlen(describe), "l.json", lookups, lookups ? strlen(lookups) : 0, &out,
                           &err) != 0) {
        CHECK(out.len == 0); /* nothing half-written */
        gw_buf_dispose(&out);
        return NULL;
    }
    return out.base;
}

static void expect_error(const char *describe, const char *lookups, const char *want)
{
    char *out = import(describe, lookups);
    CHECK_REPORT(out == NULL && strstr(err.text, want) != NULL, "import fails with \"%s\" (got \"%s\")", want, err.text);
    free(out);
}

#define RES(attrs) "{\"Resources\": {\"things\": {\"attributes\": [" attrs "]}}}"

static void test_bad_inputs(void)
{
    expect_error("not json", NULL, "d.json:1:3: not valid JSON");
    expect_error("{}", NULL, "d.json: /: no \"Resources\" object");
    expect_error("{\"Resources\": {}}", NULL, "no \"Resources\" object");
    /* a name that is not one literal path segment would make a route that does not compile, or matches elsewhere */
    expect_error("{\"Resources\":{\"a\":{\"attributes\":[],\"children\":{\"}\":{\"attributes\":[]}}}}}", NULL,
                 "d.json: /Resources/a/children/}: resource name \"}\" cannot be a URL path segment");
    expect_error("{\"Resources\":{\"a/b\":{\"attributes\":[]}}}", NULL, "resource name \"a/b\" cannot be");
    expect_error("{\"Resources\": {\"things\": {}}}", NULL, "d.json: /Resources/things: no \"attributes\" list");
    expect_error(RES("{\"type\": \"string\"}"), NULL, "d.json: /Resources/things/attributes/0: an attribute without a name");
    expect_error(RES("{\"name\": \"A\", \"type\": \"string\"}, {\"name\": \"B\", \"type\": \"blob\"}"), NULL,
                 "d.json: /Resources/things/attributes/1/type: attribute \"B\" has an unknown type \"blob\"");
    expect_error(RES("{\"name\": \"A\", \"type\": \"string\", \"maxLength\": \"thirty\"}"), NULL,
                 "/Resources/things/attributes/0/maxLength: attribute \"A\": maxLength must be a number");
    expect_error(RES("{\"name\": \"A\", \"type\": \"string\"}, {\"name\": \"A\", \"type\": \"string\"}"), NULL,
                 "attribute \"A\" is described twice");
    expect_error(RES("{\"name\": \"A\"}"), NULL, "attribute \"A\" has no type");
    expect_error(RES("{\"name\": \"A\", \"type\": \"string\"}"), "[]", "l.json: /: a lookups file is");
    expect_error(RES("{\"name\": \"A\", \"type\": \"string\"}"), "{\"lookups\": {\"L\": []}, \"attributes\": {}}",
                 "l.json: /lookups/L: a lookup must be a non-empty array");
    expect_error(RES("{\"name\": \"A\", \"type\": \"string\"}"), "{\"lookups\": {\"L\": [\"x\"]}, \"attributes\": {\"A\": \"M\"}}",
                 "l.json: /attributes/A: names no lookup");
    expect_error(RES("{\"name\": \"A\", \"type\": \"string\"}"), "{\"lookups\": {\"L\": [\"x\"]}, \"attributes\": {\"Z\": \"L\"}}",
                 "l.json: /attributes/Z: matches no attribute");
    expect_error(RES("{\"name\": \"A\", \"type\": \"integer\"}"), "{\"lookups\": {\"L\": [\"x\"]}, \"attributes\": {\"A\": \"L\"}}",
                 "which is not a string");
}

/* Looks up a field's compiled definition through the route that uses its schema. */
static const gw_field_t *field_of(const gw_ruleset_t *rules, const char *method, const char *path, const char *name)
{
    pcre2_match_data *md = pcre2_match_data_create(1, NULL);
    const gw_route_t *r = gw_ruleset_match(rules, method, strlen(method), path, strlen(path), md, NULL);
    pcre2_match_data_free(md);
    return r != NULL ? gw_schema_find(r->schema, name, strlen(name)) : NULL;
}

static const char *mapping_describe =
    RES("{\"name\": \"Id\", \"type\": \"integer\", \"mandatory\": true, \"updatable\": false,"
                           "  \"hasDefaultValueExpression\": true},"
                           "{\"name\": \"Num\", \"type\": \"string\", \"maxLength\": \"30\", \"updatable\": false,"
                           "  \"allowChanges\": \"inCreate\", \"mandatory\": true},"
                           "{\"name\": \"Dir\", \"type\": \"string\", \"precision\": 30, \"mandatory\": true, \"defaultValue\": \"IN\"},"
                           "{\"name\": \"Small\", \"type\": \"integer\", \"precision\": 9},"
                           "{\"name\": \"Amount\", \"type\": \"number\"}, {\"name\": \"On\", \"type\": \"boolean\"},"
                           "{\"name\": \"When\", \"type\": \"datetime\"}, {\"name\": \"Day\", \"type\": \"date\"},"
                           "{\"name\": \"Code\", \"type\": \"string\", \"maxLength\": 10, \"allowChanges\": \"never\"},"
                           "{\"name\": \"Kind\", \"type\": \"string\", \"mandatory\": true}");
static const char *mapping_lookups = "{\"lookups\": {\"K\": [\"a\", \"b\"]}, \"attributes\": {\"things.Kind\": \"K\"}}";

static void test_mapping(void)
{
    char *out = import(mapping_describe, mapping_lookups);
    CHECK_REPORT(out != NULL, "import works (%s)", err.text);
    if (out == NULL)
        return;
    gw_error_clear(&err);
    gw_ruleset_t *rules = gw_ruleset_load_buffer("imported.json", out, strlen(out), NULL, &err);
    CHECK_REPORT(rules != NULL, "the imported rules compile (%s)", err.text);
    if (rules != NULL) {
        const char *p = "/crmRestApi/resources/11.13.18.05/things";
        const gw_field_t *f = field_of(rules, "POST", p, "Id");
        CHECK(f != NULL && f->type == GW_TYPE_INT64 && f->read_only && !f->required); /* a generated key */
        f = field_of(rules, "POST", p, "Num");
        CHECK(f != NULL && f->create_only && !f->read_only && f->required && f->max_length == 30);
        f = field_of(rules, "POST", p, "Dir");
        CHECK(f != NULL && f->max_length == 30 && !f->required); /* length from precision; default: not required */
        CHECK(field_of(rules, "POST", p, "Small")->type == GW_TYPE_INT32);
        CHECK(field_of(rules, "POST", p, "Amount")->type == GW_TYPE_NUMBER);
        CHECK(field_of(rules, "POST", p, "On")->type == GW_TYPE_BOOL);
        CHECK(field_of(rules, "POST", p, "When")->type == GW_TYPE_DATETIME);
        CHECK(field_of(rules, "POST", p, "Day")->type == GW_TYPE_DATE);
        CHECK(field_of(rules, "POST", p, "Code")->read_only);
        f = field_of(rules, "POST", p, "Kind");
        CHECK(f != NULL && f->required && f->lookup != NULL && strcmp(f->lookup->name, "K") == 0);
        CHECK(field_of(rules, "POST", p, "links")->read_only);
        CHECK(field_of(rules, "PATCH", "/crmRestApi/resources/latest/things/42", "Num") != NULL);
        gw_ruleset_release(rules);
    }
    /* the same input gives the same bytes */
    char *again = import(mapping_describe, mapping_lookups);
    CHECK(again != NULL && strcmp(out, again) == 0);
    free(again);
    free(out);
}

/* Compares every field two schemas share, recursing into array items; returns the number of fields compared. */
static size_t compare_schemas(const gw_schema_t *imported, const gw_schema_t *shipped, const char *where)
{
    size_t compared = 0;
    for (size_t i = 0; i < imported->nfields; ++i) {
        const gw_field_t *a = &imported->fields[i];
        const gw_field_t *b = gw_schema_find(shipped, a->name, a->name_len);
        if (b == NULL)
            continue; /* only describe knows it (a custom field) */
        ++compared;
        CHECK_REPORT(a->type == b->type && a->max_length == b->max_length && a->read_only == b->read_only &&
                         a->create_only == b->create_only && a->required == b->required &&
                         (a->lookup == NULL) == (b->lookup == NULL) &&
                         (a->lookup == NULL || strcmp(a->lookup->name, b->lookup->name) == 0),
                     "%s/%s agrees (type %s/%s, maxLength %lld/%lld, ro %d/%d, co %d/%d, req %d/%d)", where, a->name,
                     gw_field_type_name(a->type), gw_field_type_name(b->type), (long long)a->max_length,
                     (long long)b->max_length, (int)a->read_only, (int)b->read_only, (int)a->create_only,
                     (int)b->create_only, (int)a->required, (int)b->required);
        if (a->type == GW_TYPE_ARRAY && a->schema != NULL && b->schema != NULL)
            compared += compare_schemas(a->schema, b->schema, a->name);
    }
    return compared;
}

static void test_agreement_with_shipped_rules(void)
{
    size_t dlen, llen;
    char *describe = slurp(CRMGATE_SOURCE_DIR "/tests/describe/interactions-describe.json", &dlen);
    char *lookups = slurp(CRMGATE_SOURCE_DIR "/tests/describe/interactions-lookups.json", &llen);
    CHECK(describe != NULL && lookups != NULL);
    if (describe == NULL || lookups == NULL)
        return;
    gw_buf_t out = GW_BUF_INIT;
    gw_error_clear(&err);
    CHECK_REPORT(gw_describe_import("interactions-describe.json", describe, dlen, "interactions-lookups.json", lookups, llen,
                                    &out, &err) == 0,
                 "the sample describe imports (%s)", err.text);
    gw_ruleset_t *imported = gw_ruleset_load_buffer("imported.json", out.base, out.len, NULL, &err);
    const char *path = CRMGATE_SOURCE_DIR "/rules";
    gw_ruleset_t *shipped = gw_ruleset_load(&path, 1, NULL, &err);
    CHECK_REPORT(imported != NULL && shipped != NULL, "both rule sets compile (%s)", err.text);
    if (imported != NULL && shipped != NULL) {
        pcre2_match_data *md = pcre2_match_data_create(1, NULL);
        size_t routes = 0, fields = 0;
        for (size_t i = 0; i < gw_ruleset_route_count(imported); ++i) {
            const gw_route_t *r = gw_ruleset_route(imported, i);
            /* the same request, with concrete values for the parameters */
            char concrete[512] = "";
            for (const char *p = r->path; *p != '\0'; ++p) {
                if (*p == '{') {
                    strcat(concrete, strncmp(p, "{version}", 9) == 0 ? "11.13.18.05" : "7");
                    p = strchr(p, '}');
                } else {
                    strncat(concrete, p, 1);
                }
            }
            const gw_route_t *s = gw_ruleset_match(shipped, r->method, strlen(r->method), concrete, strlen(concrete), md, NULL);
            CHECK_REPORT(s != NULL && s->operation == r->operation, "the shipped rules have %s %s", r->method, concrete);
            if (s != NULL) {
                ++routes;
                fields += compare_schemas(r->schema, s->schema, r->schema->name);
            }
        }
        CHECK_INT_EQ(routes, gw_ruleset_route_count(shipped)); /* every shipped route is covered by describe */
        CHECK_REPORT(fields > 100, "%zu field definitions compared", fields);
        /* a payload judged by both */
        gw_evaluator_t ev;
        gw_evaluator_init(&ev, &(gw_limits_t)GW_LIMITS_DEFAULT);
        const char *body = "{\"ChannelTypeCd\":\"ORA_SVC_WEB\",\"interactionReferences\":[{\"ObjectTypeCd\":\"MOO_OPTYX\"}]}";
        gw_request_t req = {.method = "POST", .method_len = 4, .path = "/crmRestApi/resources/11.13.18.05/interactions",
                            .content_type = {"application/json", 16, 1}, .body = body, .body_len = strlen(body)};
        req.path_len = strlen(req.path);
        gw_result_t a, b;
        gw_evaluate(&ev, gw_evaluate_route(&ev, imported, &req), &req, &a);
        gw_evaluate(&ev, gw_evaluate_route(&ev, shipped, &req), &req, &b);
        CHECK(a.decision == GW_DECISION_REJECT && b.decision == GW_DECISION_REJECT);
        CHECK(a.violations.count == 1 && b.violations.count == 1 &&
              strcmp(a.violations.items[0].pointer, "/interactionReferences/0/ObjectTypeCd") == 0 &&
              strcmp(b.violations.items[0].pointer, a.violations.items[0].pointer) == 0);
        /* the tenant's custom field is known to the imported rules only */
        const char *custom = "{\"CustomerSentiment_c\":\"calm\"}";
        req.body = custom;
        req.body_len = strlen(custom);
        gw_evaluate(&ev, gw_evaluate_route(&ev, imported, &req), &req, &a);
        CHECK(a.decision == GW_DECISION_FORWARD);
        gw_evaluator_dispose(&ev);
        pcre2_match_data_free(md);
    }
    gw_ruleset_release(imported);
    gw_ruleset_release(shipped);
    gw_buf_dispose(&out);
    free(describe);
    free(lookups);
}

static void test_digest(void)
{
    /* formatting, descriptions and field order of the JSON text do not change the digest; a constraint does */
    const char *a = "{\"crmgate-rules\": 1, \"schemas\": {\"s\": {\"fields\": {\"x\": {\"type\": \"string\", \"maxLength\": 3}}}}}";
    const char *b = "{\n \"description\": \"same rules\",\n \"schemas\": {\"s\": {\"fields\": {\"x\": {\"maxLength\": 3,"
                    " \"type\": \"string\", \"description\": \"d\"}}}},\n \"crmgate-rules\": 1}";
    const char *c = "{\"crmgate-rules\": 1, \"schemas\": {\"s\": {\"fields\": {\"x\": {\"type\": \"string\", \"maxLength\": 4}}}}}";
    gw_ruleset_t *ra = gw_ruleset_load_buffer("a.json", a, strlen(a), NULL, &err);
    gw_ruleset_t *rb = gw_ruleset_load_buffer("b.json", b, strlen(b), NULL, &err);
    gw_ruleset_t *rc = gw_ruleset_load_buffer("c.json", c, strlen(c), NULL, &err);
    CHECK(ra != NULL && rb != NULL && rc != NULL);
    if (ra != NULL && rb != NULL && rc != NULL) {
        CHECK_STR_EQ(gw_ruleset_digest(ra), gw_ruleset_digest(rb));
        CHECK(strcmp(gw_ruleset_digest(ra), gw_ruleset_digest(rc)) != 0);
    }
    gw_ruleset_release(ra);
    gw_ruleset_release(rb);
    gw_ruleset_release(rc);
}

int main(void)
{
    test_bad_inputs();
    test_mapping();
    test_agreement_with_shipped_rules();
    test_digest();
    return check_done();
}
