// A WebSocket client on node's `ws` library (Debian's node-ws), for the end-to-end tests: a
// client nobody in this project wrote. It sends text and binary messages of the given sizes to
// the initiator, checks each answer of the terminator's built-in sink (the message, its type and
// the trail of both hops), then closes with a code and checks that the same code comes back.
//   NODE_PATH=/usr/share/nodejs node ws_client.js URL SIZES TRAIL CLOSE_CODE
// Exits 0 when everything matched, 1 with a line saying what did not.
'use strict';
const WebSocket = require('ws');

const [url, sizesArg, trailArg, closeArg] = process.argv.slice(2);
const sizes = sizesArg.split(',').map(Number);
const trail = trailArg.split(',');
const closeCode = Number(closeArg);

function fail(why) {
    console.error('ws_client.js: ' + why);
    process.exit(1);
}
setTimeout(() => fail('timed out'), 60000).unref();

// One message per size and type: text first, then binary, in order.
const plan = [];
for (const n of sizes) {
    plan.push({binary: false, payload: 'x'.repeat(n)});
    const bytes = Buffer.alloc(n);
    for (let i = 0; i < n; ++i) bytes[i] = (i * 31 + 7) & 0xff;
    plan.push({binary: true, payload: bytes});
}

const ws = new WebSocket(url, {maxPayload: 64 * 1024 * 1024});
let next = 0;
function sendNext() {
    if (next === plan.length) {
        ws.close(closeCode, 'node client done');
        return;
    }
    const m = plan[next];
    ws.send(m.payload, {binary: m.binary});
}
ws.on('open', sendNext);
ws.on('message', (data, isBinary) => {
    if (isBinary) fail('the sink answered with a binary message');
    let reply;
    try {
        reply = JSON.parse(data.toString());
    } catch (e) {
        fail('the answer is not JSON: ' + e.message);
    }
    const m = plan[next];
    const expected = m.binary ? m.payload.toString('base64') : m.payload;
    if (reply.binary !== m.binary) fail(`message ${next}: binary is ${reply.binary}`);
    if (reply.message !== expected) fail(`message ${next}: the answer holds another message`);
    if (JSON.stringify(reply.trail) !== JSON.stringify(trail)) {
        fail(`message ${next}: trail ${JSON.stringify(reply.trail)}`);
    }
    ++next;
    sendNext();
});
ws.on('close', (code) => {
    if (next !== plan.length) fail(`closed with ${code} after ${next} of ${plan.length} messages`);
    if (code !== closeCode) fail(`close code ${code}, expected ${closeCode}`);
    console.log(`ws_client.js: ${plan.length} messages answered, close ${code} came back`);
    process.exit(0);
});
ws.on('error', (e) => fail('error: ' + e.message));
