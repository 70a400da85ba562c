/* The rule compiler: the shipped rules compile, lookups are anchored, routes
 * match as documented, and every broken rule file is refused with a precise error. */
#include <stdlib.h>
#include <unistd.h>
#include "../../gateway/buf.h"
#include "../../gateway/rules.h"
#include "check.h"

static pcre2_match_data *md;

static gw_ruleset_t *shipped(void)
{
    const char *path = CRMGATE_SOURCE_DIR "/rules";
    gw_error_t err;
    gw_error_clear(&err);
    gw_ruleset_t *rules = gw_ruleset_load(&path, 1, NULL, &err);
    CHECK_REPORT(rules != NULL, "shipped rules compile (%s)", err.text);
    return rules;
}

static const gw_route_t *match(const gw_ruleset_t *rules, const char *method, const char *path)
{
    return gw_ruleset_match(rules, method, strlen(method), path, strlen(path), md, NULL);
}

static void test_routes(const gw_ruleset_t *rules)
{
    const gw_route_t *r = match(rules, "POST", "/crmRestApi/resources/11.13.18.05/interactions");
    CHECK(r != NULL && strcmp(r->schema->name, "interaction") == 0 && r->operation == GW_OP_CREATE);
    CHECK(match(rules, "POST", "/crmRestApi/resources/latest/interactions") != NULL);
    CHECK(match(rules, "POST", "/crmRestApi/resources/11.12.1.0/interactions") != NULL); /* every version is validated */
    CHECK(match(rules, "POST", "/crmRestApi/resources/v1/interactions") == NULL);
    CHECK(match(rules, "POST", "/crmRestApi/resources/11x13x18x05/interactions") == NULL); /* dots are literal */
    CHECK(match(rules, "GET", "/crmRestApi/resources/11.13.18.05/interactions") == NULL);
    CHECK(match(rules, "POST", "/crmRestApi/resources/11.13.18.05/interactionsX") == NULL);
    r = match(rules, "PATCH", "/crmRestApi/resources/11.13.18.05/interactions/300100");
    CHECK(r != NULL && r->operation == GW_OP_UPDATE);
    r = match(rules, "POST", "/crmRestApi/resources/latest/interactions/1/child/interactionReferences");
    CHECK(r != NULL && strcmp(r->schema->name, "interactionReference") == 0);
    r = match(rules, "PATCH", "/crmRestApi/resources/latest/interactions/1/child/interactionReferences/00020000000EACED");
    CHECK(r != NULL && r->operation == GW_OP_UPDATE);
    static const char *children[] = {"childInteractions", "InteractionData", "InteractionParticipants",
                                     "interactionReferences", "smartActions"};
    for (size_t i = 0; i < sizeof(children) / sizeof(children[0]); ++i) {
        char path[200];
        snprintf(path, sizeof(path), "/crmRestApi/resources/latest/interactions/1/child/%s", children[i]);
        CHECK_REPORT(match(rules, "POST", path) != NULL, "POST route for %s", children[i]);
        strcat(path, "/abc");
        CHECK_REPORT(match(rules, "PATCH", path) != NULL, "PATCH route for %s", children[i]);
    }
    CHECK(match(rules, "POST", "/crmRestApi/resources/latest/interactions/1/child/smartActions/2/child/UserActionURLBinding") !=
          NULL);
}

static void test_lookup_anchoring(const gw_ruleset_t *rules)
{
    const gw_route_t *r = match(rules, "POST", "/crmRestApi/resources/latest/interactions/1/child/interactionReferences");
    const gw_field_t *f = gw_schema_find(r->schema, "ObjectTypeCd", 12);
    CHECK(f != NULL && f->lookup != NULL);
    if (f == NULL || f->lookup == NULL)
        return;
    static const char *good[] = {"ZMM_ACTIVITIES", "MOO_OPTY", "SVC_WORK_ORDERS", "SVC_SERVICE_REQUESTS", "MKL_LM_LEADS"};
    for (size_t i = 0; i < 5; ++i)
        CHECK_REPORT(gw_regex_full_match(f->lookup->re, good[i], strlen(good[i]), md, NULL) == 1, "%s is a code", good[i]);
    static const char *bad[] = {"MOO_OPTY\n", " MOO_OPTY", "MOO_OPTYX", "moo_opty", "MOO_OPTY|ZMM_ACTIVITIES", "", "MOO_OPT",
                                "MOO_OPTY ", "\nMOO_OPTY"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i)
        CHECK_REPORT(gw_regex_full_match(f->lookup->re, bad[i], strlen(bad[i]), md, NULL) == 0, "\"%s\" is not a code",
                     bad[i]);
    CHECK(gw_regex_full_match(f->lookup->re, "MOO_OPTY\0", 9, md, NULL) == 0); /* an embedded NUL */
}

/* Compiles a document and returns the error text ("" when it compiled). */
static const char *compile_error(const char *json)
{
    static gw_error_t err;
    gw_error_clear(&err);
    gw_ruleset_t *rules = gw_ruleset_load_buffer("t.json", json, strlen(json), NULL, &err);
    if (rules != NULL) {
        gw_ruleset_release(rules);
        return "";
    }
    return err.text;
}

#define DOC(schemas, extra) "{\"crmgate-rules\": 1, \"schemas\": {" schemas "}" extra "}"

static void test_errors(void)
{
    CHECK_STR_EQ(compile_error(DOC("\"s\": {\"fields\": {\"a\": {\"type\": \"string\"}}}", "")), "");
    CHECK_STR_EQ(compile_error("{\"crmgate-rules\": 1,\n  \"schemas\": {,}}"), "t.json:2:15: string or '}' expected near ','");
    CHECK_CONTAINS(compile_error("{\"crmgate-rules\": 1, \"crmgate-rules\": 1}"), "t.json:1:");
    CHECK_CONTAINS(compile_error("[]"), "t.json: /: a rule file must be a JSON object");
    CHECK_CONTAINS(compile_error("{}"), "\"crmgate-rules\": 1 is required");
    CHECK_CONTAINS(compile_error("{\"crmgate-rules\": 2}"), "t.json: /crmgate-rules:");
    CHECK_CONTAINS(compile_error("{\"crmgate-rules\": 1, \"shemas\": {}}"), "unknown key \"shemas\" (did you mean \"schemas\"?)");
    CHECK_STR_EQ(compile_error(DOC("\"s\": {\"fields\": {\"a\": {\"type\": \"strng\"}}}", "")),
                 "t.json: /schemas/s/fields/a/type: unknown type \"strng\" (did you mean \"string\"?)");
    CHECK_CONTAINS(compile_error(DOC("\"s\": {\"fields\": {\"a\": {\"type\": \"varchar\"}}}", "")),
                   "/schemas/s/fields/a/type: unknown type \"varchar\"");
    CHECK_CONTAINS(compile_error(DOC("\"s\": {\"fields\": {\"a\": {\"type\": \"string\", \"pattern\": \"ab(c\"}}}", "")),
                   "t.json: /schemas/s/fields/a/pattern: invalid regular expression \"ab(c\" at offset 4: missing closing parenthesis");
    CHECK_STR_EQ(compile_error(DOC("\"s\": {\"fields\": {\"a\": {\"type\": \"string\", \"lookup\": \"NOPE\"}}}", "")),
                 "t.json: /schemas/s/fields/a/lookup: unknown lookup \"NOPE\" (not defined under /lookups of this file)");
    CHECK_CONTAINS(compile_error(DOC("\"s\": {\"fields\": {\"a\": {\"type\": \"int64\", \"maxLength\": 3}}}", "")),
                   "/schemas/s/fields/a/maxLength: maxLength applies to strings only");
    CHECK_CONTAINS(compile_error(DOC("\"s\": {\"fields\": {\"a\": {\"type\": \"string\", \"maxLength\": -1}}}", "")),
                   "maxLength must be 0 or more");
    CHECK_CONTAINS(compile_error(DOC("\"s\": {\"fields\": {\"a\": {\"type\": \"string\", \"maxLength\": \"30\"}}}", "")),
                   "/schemas/s/fields/a/maxLength: must be an integer, not a string");
    CHECK_CONTAINS(compile_error(DOC("\"s\": {\"fields\": {\"a\": {\"type\": \"array\", \"items\": \"t\"}}}", "")),
                   "/schemas/s/fields/a/items: unknown schema \"t\"");
    CHECK_CONTAINS(compile_error(DOC("\"s\": {\"fields\": {\"a\": {\"type\": \"string\", \"readOnly\": true, \"required\": true}}}", "")),
                   "a readOnly field cannot also be required");
    CHECK_CONTAINS(compile_error(DOC("\"s\": {\"fields\": {\"a\": {\"typ\": \"string\"}}}", "")), "did you mean \"type\"");
    CHECK_CONTAINS(compile_error(DOC("\"s\": {\"unknown-fields\": \"drop\", \"fields\": {}}", "")), "/schemas/s/unknown-fields");
    CHECK_CONTAINS(compile_error(DOC("\"s\": {\"fields\": {}}", ", \"lookups\": {\"L\": []}")), "/lookups/L: a lookup must be");
    CHECK_CONTAINS(compile_error(DOC("\"s\": {\"fields\": {}}", ", \"lookups\": {\"L\": [\"A\", \"A\"]}")),
                   "/lookups/L/1: duplicate code \"A\"");
    CHECK_CONTAINS(compile_error(DOC("\"s\": {\"fields\": {}}", ", \"routes\": [{\"method\": \"POST\", \"path\": \"/x\", \"schema\": \"t\"}]")),
                   "/routes/0/schema: unknown schema \"t\"");
    CHECK_CONTAINS(compile_error(DOC("\"s\": {\"fields\": {}}", ", \"routes\": [{\"method\": \"post\", \"path\": \"/x\", \"schema\": \"s\"}]")),
                   "/routes/0/method:");
    CHECK_CONTAINS(compile_error(DOC("\"s\": {\"fields\": {}}", ", \"routes\": [{\"method\": \"POST\", \"path\": \"/x/{id\", \"schema\": \"s\"}]")),
                   "unclosed '{'");
    CHECK_CONTAINS(compile_error(DOC("\"s\": {\"fields\": {}}", ", \"params\": {\"v\": \"(\"}")), "/params/v: invalid parameter pattern");
    CHECK_CONTAINS(compile_error(DOC("\"s\": {\"fields\": {}}",
                                     ", \"routes\": [{\"method\": \"POST\", \"path\": \"/x/{a}\", \"schema\": \"s\"},"
                                     " {\"method\": \"POST\", \"path\": \"/x/{b}\", \"schema\": \"s\"}]")),
                   "/routes/1: route POST /x/{b} is already defined in t.json (as /x/{a})");
}

/* Two files claiming one route: the error names both. */
static void test_duplicate_route_across_files(void)
{
    char dir[] = "/tmp/crmgate-rules-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    const char *doc = DOC("\"s\": {\"fields\": {}}", ", \"routes\": [{\"method\": \"POST\", \"path\": \"/x\", \"schema\": \"s\"}]");
    char a[64], b[64];
    snprintf(a, sizeof(a), "%s/a.json", dir);
    snprintf(b, sizeof(b), "%s/b.json", dir);
    FILE *fp = fopen(a, "w");
    fputs(doc, fp);
    fclose(fp);
    fp = fopen(b, "w");
    fputs(doc, fp);
    fclose(fp);
    const char *path = dir;
    gw_error_t err;
    gw_error_clear(&err);
    gw_ruleset_t *rules = gw_ruleset_load(&path, 1, NULL, &err);
    CHECK(rules == NULL);
    CHECK_CONTAINS(err.text, "b.json: /routes/0: route POST /x is already defined in");
    CHECK_CONTAINS(err.text, "a.json");
    unlink(a);
    /* one file alone compiles, and the digest identifies its content */
    gw_error_clear(&err);
    rules = gw_ruleset_load(&path, 1, NULL, &err);
    CHECK(rules != NULL && strlen(gw_ruleset_digest(rules)) == 64);
    gw_ruleset_release(rules);
    unlink(b);
    gw_error_clear(&err);
    CHECK(gw_ruleset_load(&path, 1, NULL, &err) == NULL);
    CHECK_CONTAINS(err.text, "no *.json rule files");
    rmdir(dir);
}

/* Field lookup hashes a name's first and last 8 bytes and its length: names alike there must still be told apart,
 * and every field of a big schema must be found. */
static void test_field_lookup(void)
{
    gw_buf_t doc = GW_BUF_INIT;
    gw_buf_appendz(&doc, "{\"crmgate-rules\": 1, \"routes\": [{\"method\": \"POST\", \"path\": \"/x/{id}/y\", "
                         "\"schema\": \"s\"}], \"schemas\": {\"s\": {\"fields\": {"
                         "\"AccountAAAAPartyId\": {\"type\": \"int64\"}, \"AccountBBBBPartyId\": {\"type\": \"string\"}, "
                         "\"ab\": {\"type\": \"string\"}, \"ba\": {\"type\": \"string\"}, \"a\": {\"type\": \"string\"}");
    for (int i = 0; i < 60; ++i)
        gw_buf_printf(&doc, ", \"Field%02dName\": {\"type\": \"string\"}", i);
    gw_buf_appendz(&doc, "}}}}");
    gw_error_t err;
    gw_error_clear(&err);
    gw_ruleset_t *rules = gw_ruleset_load_buffer("t.json", doc.base, doc.len, NULL, &err);
    gw_buf_dispose(&doc);
    CHECK_REPORT(rules != NULL, "schema with 65 fields compiles (%s)", err.text);
    if (rules == NULL)
        return;
    const gw_schema_t *schema = gw_ruleset_route(rules, 0)->schema;
    const gw_field_t *a = gw_schema_find(schema, "AccountAAAAPartyId", 18);
    const gw_field_t *b = gw_schema_find(schema, "AccountBBBBPartyId", 18);
    CHECK(a != NULL && b != NULL && a != b && a->type == GW_TYPE_INT64 && b->type == GW_TYPE_STRING);
    CHECK(gw_schema_find(schema, "AccountCCCCPartyId", 18) == NULL);
    CHECK(gw_schema_find(schema, "AccountAAAAPartyI", 17) == NULL);
    CHECK(gw_schema_find(schema, "ab", 2) != NULL && gw_schema_find(schema, "ab", 2) != gw_schema_find(schema, "ba", 2));
    CHECK(gw_schema_find(schema, "a", 1) != NULL && gw_schema_find(schema, "b", 1) == NULL);
    CHECK(gw_schema_find(schema, "", 0) == NULL);
    int found = 0;
    for (int i = 0; i < 60; ++i) {
        char name[16];
        snprintf(name, sizeof(name), "Field%02dName", i);
        const gw_field_t *f = gw_schema_find(schema, name, strlen(name));
        found += f != NULL && strcmp(f->name, name) == 0;
    }
    CHECK_INT_EQ(found, 60);
    /* a route is matched by its literal prefix, its literal suffix and its pattern together */
    CHECK(match(rules, "POST", "/x/1/y") != NULL);
    CHECK(match(rules, "POST", "/x/y") == NULL);  /* shorter than prefix and suffix together */
    CHECK(match(rules, "POST", "/x/1/z") == NULL);
    CHECK(match(rules, "POST", "/x/1/yy") == NULL);
    CHECK(match(rules, "POST", "/x//y") == NULL); /* the parameter is not empty */
    gw_ruleset_release(rules);
}

int main(void)
{
    md = pcre2_match_data_create(1, NULL);
    gw_ruleset_t *rules = shipped();
    if (rules != NULL) {
        test_routes(rules);
        test_lookup_anchoring(rules);
        gw_ruleset_release(rules);
    }
    test_errors();
    test_duplicate_route_across_files();
    test_field_lookup();
    pcre2_match_data_free(md);
    return check_done();
}
