/*
 * The body limit at the connection level. h2o 2.2.5 buffers a request body
 * whole before any handler runs, and answers an HTTP/2 body over its own limit
 * with RST_STREAM(REFUSED_STREAM), which clients retry. crmgate must answer 413
 * instead, without buffering what it will refuse. So for each HTTP/2
 * connection this guard sits in front of h2o's frame parser (the connection's
 * _read_expect hook, public in h2o/http2_internal.h) and, for a stream whose
 * body goes over limits.max-body:
 *  - hands h2o a last DATA frame, cut so that the body is max-body + 1 bytes,
 *    with END_STREAM: the handler then sees an over-limit body and answers 413;
 *  - swallows the rest of that stream's DATA, giving the client its flow-control
 *    window back so that it finishes its upload and reads the 413 (a stream
 *    that goes on past MAX_DISCARD is told to stop with RST_STREAM NO_ERROR).
 * HTTP/1.1 needs no guard: h2o refuses a Content-Length over its limit before
 * reading the body, and the rewrite filter puts that 413 in crmgate's format.
 *
 * Streams are tracked from the frames themselves (HEADERS without END_STREAM
 * opens a body, DATA counts it, END_STREAM or RST_STREAM ends it): h2o's own
 * stream table is not reachable with Debian's headers (see compat/khash.h).
 *
 * Ownership: one guard per accepted socket, freed by the socket's on_close hook
 * (which h2o leaves unused on accepted sockets).
 */
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include "buf.h"
#include "server.h" /* h2o.h first: http2_internal.h relies on it */
#include <h2o/http2.h>
#include <h2o/http2_internal.h>

#define FRAME_HEADER_SIZE 9
#define FRAME_TYPE_HEADERS 1
#define FRAME_TYPE_RST_STREAM 3
#define MAX_TRACKED_STREAMS 128 /* h2o allows 100 concurrent streams */
/* What a cut stream may still send, discarded, before it is told to stop. Clients
 * such as curl 7.88 mishandle RST_STREAM(NO_ERROR) arriving while they upload
 * (they sometimes drop the response they have just received), so an oversized
 * upload is normally let run to its end; this only bounds a stream that never ends. */
#define MAX_DISCARD ((size_t)1024 * 1024 * 1024)
/* Control frames a client may send per second on one connection before it is closed with ENHANCE_YOUR_CALM.
 * h2o 2.2.5 predates the fix for the HTTP/2 "rapid reset" (CVE-2023-44487): a reset stream still makes h2o
 * start its request, here a proxied one. Debian carries the 2019 flood fixes (CVE-2019-9512/9514/9515);
 * these counters bound PING and SETTINGS floods per connection as well. */
#define ABUSE_WINDOW_MS 1000 /* the limits (limits.http2-*-per-second) count per window; 0 is no limit */

typedef ssize_t (*read_expect_cb)(h2o_http2_conn_t *conn, const uint8_t *src, size_t len, const char **err_desc);

/* A request stream whose body is arriving. */
typedef struct st_body_stream_t {
    uint32_t id; /* 0: free slot */
    size_t received;
    int cut;          /* over the limit: h2o got max-body + 1 bytes, the rest is swallowed */
    int answered;     /* h2o has finished the response of a cut stream */
    size_t discarded; /* bytes swallowed since the cut */
} body_stream_t;

typedef struct st_gw_conn_guard_t {
    size_t max_body;
    unsigned max_resets, max_pings, max_settings;
    h2o_socket_cb inner_read;    /* h2o's read callback, while the socket is wrapped */
    h2o_http2_conn_t *h2;        /* set once the connection speaks HTTP/2 */
    read_expect_cb inner_expect; /* h2o's frame parser for the current state */
    void *handshake_data;        /* TLS: the socket's data during the handshake (then it becomes the connection) */
    h2o_socket_t *sock;
    h2o_loop_t *loop;
    h2o_timeout_t *poll_timeout;
    h2o_timeout_entry_t handshake_poll; /* TLS: looks for the end of the handshake every millisecond */
    body_stream_t streams[MAX_TRACKED_STREAMS];
    uint64_t window_started_ms; /* control-frame counting window */
    unsigned resets, pings, settings;
    unsigned depth; /* nesting of our callbacks: the guard is freed only outside them */
    int closed;
} gw_conn_guard_t;

static void on_socket_close(void *data)
{
    gw_conn_guard_t *guard = data;
    if (h2o_timeout_is_linked(&guard->handshake_poll))
        h2o_timeout_unlink(&guard->handshake_poll);
    guard->closed = 1;
    if (guard->depth == 0)
        free(guard);
}

static gw_conn_guard_t *guard_of(h2o_socket_t *sock)
{
    return sock != NULL && sock->on_close.cb == on_socket_close ? sock->on_close.data : NULL;
}

/* ---- streams ------------------------------------------------------------ */

static body_stream_t *find_stream(gw_conn_guard_t *guard, uint32_t id)
{
    for (size_t i = 0; i < MAX_TRACKED_STREAMS; ++i)
        if (guard->streams[i].id == id)
            return &guard->streams[i];
    return NULL;
}

static void open_stream(gw_conn_guard_t *guard, uint32_t id)
{
    body_stream_t *s = find_stream(guard, id);
    if (s == NULL && (s = find_stream(guard, 0)) == NULL)
        return; /* more streams than h2o allows at once: h2o's own limit still bounds them */
    *s = (body_stream_t){.id = id};
}

static void forget_stream(body_stream_t *s)
{
    *s = (body_stream_t){0};
}

/* ---- HTTP/2 frames ------------------------------------------------------ */

/* Gives back flow-control window h2o will not count, because it never saw those bytes. */
static void credit_window(h2o_http2_conn_t *conn, uint32_t stream_id, size_t bytes)
{
    if (bytes == 0)
        return;
    h2o_http2_encode_window_update_frame(&conn->_write.buf, 0, (int32_t)bytes);
    if (stream_id != 0)
        h2o_http2_encode_window_update_frame(&conn->_write.buf, stream_id, (int32_t)bytes);
    h2o_http2_conn_request_write(conn);
}

static void send_stop(h2o_http2_conn_t *conn, uint32_t stream_id)
{
    /* the response is complete: the client may stop sending (RFC 9113 8.1; 0 = NO_ERROR) */
    h2o_http2__encode_rst_stream_frame(&conn->_write.buf, stream_id, 0);
    h2o_http2_conn_request_write(conn);
}

/* A DATA frame of a cut stream: swallowed, its window given back so the client can finish its upload. */
static ssize_t swallow(h2o_http2_conn_t *conn, body_stream_t *s, uint8_t flags, size_t length)
{
    int client_done = (flags & H2O_HTTP2_FRAME_FLAG_END_STREAM) != 0;
    s->discarded += length;
    int stop = !client_done && s->answered && s->discarded > MAX_DISCARD;
    if (stop)
        send_stop(conn, s->id);
    credit_window(conn, client_done || stop ? 0 : s->id, length);
    if (client_done || stop)
        forget_stream(s);
    return FRAME_HEADER_SIZE + (ssize_t)length;
}

/* h2o's stream by id, through the priority tree every open stream is in (the stream table is out of reach). */
static h2o_http2_stream_t *find_h2o_stream(h2o_http2_scheduler_node_t *node, uint32_t id, unsigned depth)
{
    if (depth > MAX_TRACKED_STREAMS)
        return NULL;
    for (h2o_linklist_t *l = node->_all_refs.next; l != &node->_all_refs; l = l->next) {
        h2o_http2_scheduler_openref_t *ref = H2O_STRUCT_FROM_MEMBER(h2o_http2_scheduler_openref_t, _all_link, l);
        h2o_http2_stream_t *stream = H2O_STRUCT_FROM_MEMBER(h2o_http2_stream_t, _refs.scheduler, ref);
        if (stream->stream_id == id)
            return stream;
        if ((stream = find_h2o_stream(&ref->node, id, depth + 1)) != NULL)
            return stream;
    }
    return NULL;
}

/* The DATA frame that takes a stream over the limit: h2o gets a cut copy that ends the stream. */
static ssize_t cut(gw_conn_guard_t *guard, h2o_http2_conn_t *conn, body_stream_t *s, const uint8_t *src, size_t length,
                   const char **err_desc)
{
    const uint8_t *payload = src + FRAME_HEADER_SIZE;
    size_t payload_len = length;
    if ((src[4] & H2O_HTTP2_FRAME_FLAG_PADDED) != 0) {
        payload = src + FRAME_HEADER_SIZE + 1;
        payload_len = length - 1 - src[FRAME_HEADER_SIZE]; /* checked by the caller */
    }
    size_t keep = guard->max_body + 1 - s->received; /* >= 1: the body ends one byte over the limit */
    if (keep > payload_len)
        keep = payload_len;
    uint8_t *copy = malloc(FRAME_HEADER_SIZE + keep);
    if (copy == NULL)
        gw_fatal("out of memory (HTTP/2 body guard)");
    h2o_http2_encode24u(copy, (uint32_t)keep);
    copy[3] = H2O_HTTP2_FRAME_TYPE_DATA;
    copy[4] = H2O_HTTP2_FRAME_FLAG_END_STREAM;
    h2o_http2_encode32u(copy + 5, s->id);
    memcpy(copy + FRAME_HEADER_SIZE, payload, keep);
    s->cut = 1;
    s->received += keep;
    /* the body now ends short of its Content-Length, which h2o would answer with a stream reset */
    h2o_http2_stream_t *stream = find_h2o_stream(&conn->scheduler, s->id, 0);
    if (stream != NULL)
        stream->_expected_content_length = SIZE_MAX;
    ssize_t ret = guard->inner_expect(conn, copy, FRAME_HEADER_SIZE + keep, err_desc);
    free(copy);
    if (ret < 0)
        return ret;
    /* h2o credited only what it saw; the stream's window too, so the client is never stalled */
    credit_window(conn, s->id, length - keep);
    if ((src[4] & H2O_HTTP2_FRAME_FLAG_END_STREAM) != 0)
        forget_stream(s);
    return FRAME_HEADER_SIZE + (ssize_t)length;
}

/* Counts control frames; returns 0, or an error that makes h2o send GOAWAY and close the connection. */
static ssize_t count_control_frame(gw_conn_guard_t *guard, h2o_http2_conn_t *conn, uint8_t type, uint8_t flags,
                                   const char **err_desc)
{
    uint64_t now = h2o_now(guard->loop);
    if (now - guard->window_started_ms >= ABUSE_WINDOW_MS) {
        guard->window_started_ms = now;
        guard->resets = guard->pings = guard->settings = 0;
    }
    const char *what = NULL;
    unsigned limit = 0;
    if (type == FRAME_TYPE_RST_STREAM && ++guard->resets > (limit = guard->max_resets) && limit != 0)
        what = "stream resets (the HTTP/2 rapid reset attack, CVE-2023-44487)";
    else if (type == H2O_HTTP2_FRAME_TYPE_PING && (flags & H2O_HTTP2_FRAME_FLAG_ACK) == 0 &&
             ++guard->pings > (limit = guard->max_pings) && limit != 0)
        what = "PING frames (a ping flood, CVE-2019-9512)";
    else if (type == H2O_HTTP2_FRAME_TYPE_SETTINGS && (flags & H2O_HTTP2_FRAME_FLAG_ACK) == 0 &&
             ++guard->settings > (limit = guard->max_settings) && limit != 0)
        what = "SETTINGS frames (a settings flood, CVE-2019-9515)";
    if (what == NULL)
        return 0;
    char peer[INET6_ADDRSTRLEN + 8] = "?";
    struct sockaddr_storage ss;
    socklen_t sslen = h2o_socket_getpeername(conn->sock, (struct sockaddr *)&ss);
    if (sslen != 0)
        h2o_socket_getnumerichost((struct sockaddr *)&ss, sslen, peer);
    gw_log_warn("closing an HTTP/2 connection from %s: more than %u %s per second", peer, limit, what);
    *err_desc = "too many control frames";
    return H2O_HTTP2_ERROR_ENHANCE_YOUR_CALM;
}

/* Looks at a complete frame; returns its size when the guard handled it, 0 to pass it to h2o, or an error. */
static ssize_t inspect(gw_conn_guard_t *guard, h2o_http2_conn_t *conn, const uint8_t *src, size_t length,
                       const char **err_desc)
{
    uint8_t type = src[3], flags = src[4];
    if (type == FRAME_TYPE_RST_STREAM || type == H2O_HTTP2_FRAME_TYPE_PING || type == H2O_HTTP2_FRAME_TYPE_SETTINGS) {
        ssize_t err = count_control_frame(guard, conn, type, flags, err_desc);
        if (err != 0)
            return err;
    }
    uint32_t id = h2o_http2_decode32u(src + 5) & 0x7fffffff;
    body_stream_t *s = id != 0 ? find_stream(guard, id) : NULL;
    switch (type) {
    case FRAME_TYPE_HEADERS:
        if ((flags & H2O_HTTP2_FRAME_FLAG_END_STREAM) == 0 && s == NULL)
            open_stream(guard, id); /* a request with a body */
        else if ((flags & H2O_HTTP2_FRAME_FLAG_END_STREAM) != 0 && s != NULL && !s->cut)
            forget_stream(s); /* trailers end it */
        return 0;
    case FRAME_TYPE_RST_STREAM:
        if (s != NULL)
            forget_stream(s);
        return 0;
    case H2O_HTTP2_FRAME_TYPE_DATA:
        break;
    default:
        return 0;
    }
    if (s == NULL)
        return 0;
    if (s->cut)
        return swallow(conn, s, flags, length);
    size_t payload_len = length;
    if ((flags & H2O_HTTP2_FRAME_FLAG_PADDED) != 0) {
        if (length == 0 || (size_t)src[FRAME_HEADER_SIZE] + 1 > length)
            return 0; /* malformed: h2o says so */
        payload_len = length - 1 - src[FRAME_HEADER_SIZE];
    }
    if (s->received + payload_len > guard->max_body)
        return cut(guard, conn, s, src, length, err_desc);
    s->received += payload_len;
    if ((flags & H2O_HTTP2_FRAME_FLAG_END_STREAM) != 0)
        forget_stream(s);
    return 0;
}

static ssize_t guarded_read_expect(h2o_http2_conn_t *conn, const uint8_t *src, size_t len, const char **err_desc);

/* h2o switches parsers (preface, frames, CONTINUATION) by assigning _read_expect: stay in front of whichever it set. */
static void stay_in_front(gw_conn_guard_t *guard, h2o_http2_conn_t *conn)
{
    if (conn->_read_expect != guarded_read_expect) {
        guard->inner_expect = conn->_read_expect;
        conn->_read_expect = guarded_read_expect;
    }
}

static ssize_t guarded_read_expect(h2o_http2_conn_t *conn, const uint8_t *src, size_t len, const char **err_desc)
{
    gw_conn_guard_t *guard = guard_of(conn->sock);
    ssize_t ret = 0;
    static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    /* frames are judged whole (h2o waits for the rest of a partial one); the preface is h2o's alone */
    if (len >= FRAME_HEADER_SIZE && len >= FRAME_HEADER_SIZE + h2o_http2_decode24u(src) &&
        conn->state == H2O_HTTP2_CONN_STATE_OPEN && !(len >= sizeof(preface) - 1 && memcmp(src, preface, sizeof(preface) - 1) == 0))
        ret = inspect(guard, conn, src, h2o_http2_decode24u(src), err_desc);
    if (ret < 0)
        return ret;
    if (ret == 0)
        ret = guard->inner_expect(conn, src, len, err_desc);
    stay_in_front(guard, conn);
    return ret;
}

/* ---- attaching ---------------------------------------------------------- */

static void attach_h2(gw_conn_guard_t *guard, h2o_http2_conn_t *conn)
{
    if (guard->h2 != NULL || conn->_read_expect == guarded_read_expect)
        return;
    guard->h2 = conn;
    guard->inner_expect = conn->_read_expect;
    conn->_read_expect = guarded_read_expect;
}

/* Only HTTP/2 connections offer server push: how to tell them from HTTP/1 ones through public fields. */
static int is_http2_conn(h2o_conn_t *conn)
{
    return conn != NULL && conn->callbacks != NULL && conn->callbacks->push_path != NULL;
}

/* Calls h2o's read callback; returns -1 when the socket was closed meanwhile (the guard is then gone). */
static int call_inner_read(gw_conn_guard_t *guard, h2o_socket_cb cb, h2o_socket_t *sock, const char *err)
{
    ++guard->depth;
    cb(sock, err);
    --guard->depth;
    if (guard->closed) {
        if (guard->depth == 0)
            free(guard);
        return -1;
    }
    return 0;
}

static void on_read(h2o_socket_t *sock, const char *err)
{
    static const char h2_signature[] = "PRI * HTTP/2"; /* what h2o's HTTP/1 parser switches on */
    gw_conn_guard_t *guard = guard_of(sock);
    size_t hidden = 0;
    /* A cleartext HTTP/2 connection starts inside this call, and h2o would parse all the frames
     * already read before the guard could attach: let it see the 24-byte preface (and one byte,
     * so that consuming the preface does not free the buffer) and keep the rest for later. */
    if (err == NULL && sock->ssl == NULL && sock->input->size > 25 &&
        memcmp(sock->input->bytes, h2_signature, sizeof(h2_signature) - 1) == 0) {
        hidden = sock->input->size - 25;
        sock->input->size = 25;
    }
    if (call_inner_read(guard, guard->inner_read, sock, err) != 0)
        return;
    if (hidden != 0)
        sock->input->size += hidden; /* h2o consumed the preface: the rest follows the byte it kept */
    /* a socket's data is its connection (the HTTP/1 one, or the HTTP/2 one after the preface), except
     * during a TLS handshake. A TLS connection's first flight is not cut (it cannot be: it is decrypted and
     * parsed inside the handshake's callback), but it is bounded by the 64 KiB windows of RFC 9113
     * until h2o's SETTINGS arrive, and h2o's own limit leaves room for that. */
    int is_conn = sock->ssl == NULL || sock->data != guard->handshake_data;
    if (is_conn && is_http2_conn(sock->data)) {
        attach_h2(guard, sock->data);
        if (sock->_cb.read == on_read)
            sock->_cb.read = guard->inner_read; /* the frame parser is guarded now; the socket need not be */
        if (hidden != 0)
            call_inner_read(guard, sock->_cb.read, sock, NULL); /* the frames kept back, now guarded */
        return;
    }
    if (sock->_cb.read == NULL)
        return; /* h2o stopped reading (a whole request is being processed): wrapping NULL would make the loop read
                 * again and call it. h2o restarts reading with its own callback, unwrapped: a later switch to
                 * HTTP/2 on this connection is guarded from its first request (gw_bodyguard_on_request). */
    if (sock->_cb.read != on_read) { /* h2o changed states: keep watching */
        guard->inner_read = sock->_cb.read;
        sock->_cb.read = on_read;
    }
}

/* h2o completes a TLS handshake and starts HTTP/2 where no hook reaches (possibly in a write callback):
 * the guard checks every millisecond, well before the client can send past its first flight (it waits
 * for h2o's SETTINGS, a round trip away). A zero timeout would run again at once, in the same pass. */
static void on_handshake_poll(h2o_timeout_entry_t *entry)
{
    gw_conn_guard_t *guard = H2O_STRUCT_FROM_MEMBER(gw_conn_guard_t, handshake_poll, entry);
    if (guard->sock->data == guard->handshake_data) {
        h2o_timeout_link(guard->loop, guard->poll_timeout, &guard->handshake_poll);
        return;
    }
    if (is_http2_conn(guard->sock->data))
        attach_h2(guard, guard->sock->data);
}

void gw_bodyguard_attach(h2o_loop_t *loop, h2o_timeout_t *poll_timeout, h2o_socket_t *sock, const gw_limits_t *limits)
{
    if (sock->on_close.cb != NULL)
        return; /* not ours to use */
    gw_conn_guard_t *guard = calloc(1, sizeof(*guard));
    if (guard == NULL)
        gw_fatal("out of memory (body guard)");
    guard->max_body = limits->max_body;
    guard->max_resets = limits->http2_resets_per_second;
    guard->max_pings = limits->http2_pings_per_second;
    guard->max_settings = limits->http2_settings_per_second;
    guard->sock = sock;
    guard->loop = loop;
    guard->poll_timeout = poll_timeout;
    guard->handshake_poll.cb = on_handshake_poll;
    guard->handshake_data = sock->ssl != NULL ? sock->data : NULL;
    if (sock->ssl != NULL)
        h2o_timeout_link(loop, poll_timeout, &guard->handshake_poll);
    sock->on_close.cb = on_socket_close;
    sock->on_close.data = guard;
    if (sock->_cb.read != NULL) {
        guard->inner_read = sock->_cb.read;
        sock->_cb.read = on_read;
    }
}

/* Runs when the request of a cut stream is over: its response has been sent. */
static void on_cut_request_done(void *p)
{
    h2o_http2_stream_t *stream = *(h2o_http2_stream_t **)p;
    h2o_http2_conn_t *conn = (h2o_http2_conn_t *)stream->req.conn;
    gw_conn_guard_t *guard = guard_of(conn->sock);
    body_stream_t *s = guard != NULL ? find_stream(guard, stream->stream_id) : NULL;
    if (s == NULL || !s->cut)
        return; /* the client has finished sending already */
    s->answered = 1; /* the client is told to stop only if it goes on for too long: see MAX_DISCARD */
    (void)conn;
}

int gw_bodyguard_on_request(h2o_req_t *req)
{
    if (!is_http2_conn(req->conn))
        return 0;
    h2o_http2_conn_t *conn = (h2o_http2_conn_t *)req->conn;
    gw_conn_guard_t *guard = guard_of(conn->sock);
    if (guard == NULL)
        return 0;
    if (guard->h2 == NULL) {
        /* a connection the socket wrapper did not see become HTTP/2 (TLS, h2c upgrade) is guarded from its first request */
        attach_h2(guard, conn);
        return 0;
    }
    h2o_http2_stream_t *stream = H2O_STRUCT_FROM_MEMBER(h2o_http2_stream_t, req, req);
    body_stream_t *s = find_stream(guard, stream->stream_id);
    if (s == NULL || !s->cut)
        return 0;
    h2o_http2_stream_t **slot = h2o_mem_alloc_shared(&req->pool, sizeof(*slot), on_cut_request_done);
    *slot = stream;
    return 1;
}
