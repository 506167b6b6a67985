/* An example ferry hooks library (see include/ferry/hooks.h), built by meson and used by the
 * end-to-end tests:
 *   on_trigger: a message containing "drop" is dropped; one containing "shout" is sent in upper
 *     case; anything else passes unchanged.
 *   on_receive_terminator: a JSON object (starting with '{') gets the built-in reply; any other
 *     message is answered with "hooked by <node>: <message>".
 * Per-shard state lives in the context ferry_hooks_shard_init() returns, so no locks. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/hooks.h"

struct shard_state {
    char node[256];
    uint8_t* out; /* the last replacement, reused across calls of this shard */
    size_t cap;
};

uint32_t ferry_hooks_abi_version(void) { return FERRY_HOOKS_ABI_VERSION; }

void* ferry_hooks_shard_init(uint32_t shard, const char* role, const char* node_name) {
    (void)shard;
    (void)role;
    struct shard_state* s = calloc(1, sizeof(*s));
    if (s != NULL) {
        strncpy(s->node, node_name, sizeof(s->node) - 1);
    }
    return s;
}

void ferry_hooks_shard_fini(void* shard_context) {
    struct shard_state* s = shard_context;
    if (s != NULL) {
        free(s->out);
        free(s);
    }
}

static int contains(ferry_bytes b, const char* word) {
    const size_t n = strlen(word);
    for (size_t i = 0; i + n <= b.len; ++i) {
        if (memcmp(b.data + i, word, n) == 0) {
            return 1;
        }
    }
    return 0;
}

static uint8_t* reserve(struct shard_state* s, size_t len) {
    if (len > s->cap) {
        uint8_t* p = realloc(s->out, len);
        if (p == NULL) {
            return NULL;
        }
        s->out = p;
        s->cap = len;
    }
    return s->out;
}

int ferry_on_trigger(void* shard_context, ferry_bytes payload, const ferry_header* headers,
                     size_t header_count, ferry_bytes* out) {
    (void)headers;
    (void)header_count;
    struct shard_state* s = shard_context;
    if (contains(payload, "drop")) {
        return FERRY_HOOK_DROP;
    }
    if (s == NULL || !contains(payload, "shout")) {
        return FERRY_HOOK_PASS;
    }
    uint8_t* p = reserve(s, payload.len);
    if (p == NULL) {
        return FERRY_HOOK_PASS;
    }
    for (size_t i = 0; i < payload.len; ++i) {
        p[i] = (uint8_t)toupper(payload.data[i]);
    }
    out->data = p;
    out->len = payload.len;
    return FERRY_HOOK_REPLACE;
}

int ferry_on_receive_terminator(void* shard_context, ferry_bytes payload,
                                const ferry_header* headers, size_t header_count,
                                ferry_bytes* out) {
    (void)headers;
    (void)header_count;
    struct shard_state* s = shard_context;
    if (s == NULL || (payload.len > 0 && payload.data[0] == '{')) {
        return FERRY_HOOK_PASS;
    }
    const char* prefix = "hooked by ";
    const size_t plen = strlen(prefix), nlen = strlen(s->node);
    uint8_t* p = reserve(s, plen + nlen + 2 + payload.len);
    if (p == NULL) {
        return FERRY_HOOK_PASS;
    }
    memcpy(p, prefix, plen);
    memcpy(p + plen, s->node, nlen);
    memcpy(p + plen + nlen, ": ", 2);
    if (payload.len > 0) {
        memcpy(p + plen + nlen + 2, payload.data, payload.len);
    }
    out->data = p;
    out->len = plen + nlen + 2 + payload.len;
    return FERRY_HOOK_REPLACE;
}
