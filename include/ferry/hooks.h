/* ferry hooks: a small C ABI for code that looks at, changes or drops WebSocket messages.
 *
 * A hooks library is a shared object loaded with `--hooks path/to/libhooks.so` (dlopen). It must
 * export ferry_hooks_abi_version() returning FERRY_HOOKS_ABI_VERSION, and any of the hooks below;
 * a hook it does not export keeps ferry's built-in behaviour. A library that cannot be loaded or
 * has another ABI version stops ferry at start with one line and exit status 2.
 *
 * Threading: every hook runs on a shard's event loop, inside the data path of that shard. A hook
 * must not block (no I/O that waits, no locks held for long, no sleeping): while it runs, every
 * connection of its shard waits. Each shard gets its own context from ferry_hooks_shard_init(),
 * so a hook needs no locking for state it keeps there.
 *
 * Buffers: `payload` and the header views are valid during the call only. To pass a message on
 * unchanged a hook returns FERRY_HOOK_PASS and ferry forwards its own buffers (no copy). To
 * change it, the hook points *out at bytes it owns (in its shard context, say) and returns
 * FERRY_HOOK_REPLACE; ferry copies them before the next call on that shard. */
#ifndef FERRY_HOOKS_H
#define FERRY_HOOKS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FERRY_HOOKS_ABI_VERSION 1u

typedef struct ferry_bytes {
    const uint8_t* data;
    size_t len;
} ferry_bytes;

/* One metadata entry of the message's stream: ":path", "trail", "sec-websocket-protocol", ... */
typedef struct ferry_header {
    ferry_bytes name;
    ferry_bytes value;
} ferry_header;

typedef enum ferry_hook_action {
    FERRY_HOOK_PASS = 0,    /* go on with the message as it is (the built-in behaviour) */
    FERRY_HOOK_REPLACE = 1, /* go on with *out instead */
    FERRY_HOOK_DROP = 2,    /* stop here: the message is not sent (trigger) / not answered (sink) */
} ferry_hook_action;

/* Required: FERRY_HOOKS_ABI_VERSION. */
uint32_t ferry_hooks_abi_version(void);

/* Optional: a context for one shard, made on that shard's thread before it carries traffic.
 * `role` is "initiator" or "terminator", `node_name` this hop's name. NULL is a valid context. */
void* ferry_hooks_shard_init(uint32_t shard, const char* role, const char* node_name);
/* Optional: the shard is exiting. */
void ferry_hooks_shard_fini(void* shard_context);

/* Optional, initiator: a message about to be sent through the tunnel by the auto-trigger or
 * POST /trigger (headers: "source" = "auto-trigger" or "trigger"). PASS sends it, REPLACE sends
 * *out, DROP sends nothing (the result says so). Returns a ferry_hook_action. */
int ferry_on_trigger(void* shard_context, ferry_bytes payload, const ferry_header* headers,
                     size_t header_count, ferry_bytes* out);

/* Optional, terminator: the built-in sink received a whole message (headers: the stream's OPEN
 * metadata, plus "binary" = "0" or "1"). PASS answers with the default JSON reply, REPLACE
 * answers with *out (a Text message for a text message, else Binary), DROP answers nothing. */
int ferry_on_receive_terminator(void* shard_context, ferry_bytes payload,
                                const ferry_header* headers, size_t header_count, ferry_bytes* out);

#ifdef __cplusplus
}
#endif

#endif /* FERRY_HOOKS_H */
