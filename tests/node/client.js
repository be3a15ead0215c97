'use strict';
// A config stream client that shares no code with the server: gRPC from
// @grpc/grpc-js, messages from the project's .proto files loaded at run
// time by @grpc/proto-loader.
//
// usage: node client.js JSON
//   {"address": "127.0.0.1:5001", "cert": "/path/ipc_cert.pem" | null,
//    "path": "/datadog.api.v1.AgentSecure/StreamConfigEvents",
//    "stream": true, "metadata": {"authorization": "Bearer ..."},
//    "request": {...}, "rawRequest": "hex bytes instead of request",
//    "maxEvents": N, "pauseAfter": N, "pauseMs": M (default: until
//    SIGUSR1), "timeoutMs": T,
//    "fullSnapshots": false}
//
// SIGTERM ends a stream with status OK, after what was received.
// Prints one JSON object per line: {"event": ...} for each streamed
// message (or {"response": ...} for a unary call), then
// {"status": {"code": NAME, "details": TEXT}}.
const fs = require('fs');
const path = require('path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const opts = JSON.parse(process.argv[2]);
const protoDir = opts.protoDir ||
    path.join(__dirname, '..', '..', 'proto');
const def = protoLoader.loadSync([
    'datadog/api/v1/api.proto',
    'datadog/remoteagent/v1/remoteagent.proto',
    'grpc/health/v1/health.proto',
], { includeDirs: [protoDir], keepCase: true, longs: Number, enums: String,
     defaults: true, oneofs: true });

// Request and response types by method path, from the loaded services.
function methodTypes(p) {
    for (const name of Object.keys(def)) {
        const svc = def[name];
        if (typeof svc !== 'object' || svc.format) {
            continue;
        }
        for (const m of Object.values(svc)) {
            if (m && m.path === p) {
                return m;
            }
        }
    }
    // Unknown paths still need serializers: reuse the health check's.
    return def['grpc.health.v1.Health'].Check;
}

const codeNames = {};
for (const [k, v] of Object.entries(grpc.status)) {
    codeNames[v] = k;
}

function out(obj) {
    process.stdout.write(JSON.stringify(obj) + '\n');
}

let finished = false;
function finish(err) {
    if (finished) {
        return;
    }
    finished = true;
    const code = err ? err.code : grpc.status.OK;
    out({ status: { code: codeNames[code] || String(code),
                    details: err ? err.details : '' } });
    // Exit only once everything written to a pipe has been flushed.
    process.stdout.write('', () => process.exit(0));
}

// Snapshots are summarised unless "fullSnapshots" is set.
function brief(ev) {
    if (ev.snapshot && !opts.fullSnapshots) {
        return { snapshot: { origin: ev.snapshot.origin,
                             sequence_id: ev.snapshot.sequence_id,
                             n_settings: ev.snapshot.settings.length } };
    }
    return ev;
}

const creds = opts.cert
    ? grpc.credentials.createSsl(fs.readFileSync(opts.cert))
    : grpc.credentials.createInsecure();
const client = new grpc.Client(opts.address, creds);
const md = new grpc.Metadata();
for (const [k, v] of Object.entries(opts.metadata || {})) {
    md.add(k, v);
}

const m = methodTypes(opts.path);
const serialize = opts.rawRequest !== undefined
    ? () => Buffer.from(opts.rawRequest, 'hex')
    : m.requestSerialize;
const callOpts = {};
if (opts.timeoutMs) {
    callOpts.deadline = Date.now() + opts.timeoutMs;
}

if (!opts.stream) {
    client.makeUnaryRequest(opts.path, serialize, m.responseDeserialize,
        opts.request || {}, md, callOpts, (err, resp) => {
            if (!err) {
                out({ response: resp });
            }
            finish(err);
        });
} else {
    const call = client.makeServerStreamRequest(opts.path, serialize,
        m.responseDeserialize, opts.request || {}, md, callOpts);
    let n = 0;
    call.on('data', (ev) => {
        n++;
        out({ event: brief(ev) });
        if (opts.maxEvents && n >= opts.maxEvents) {
            call.cancel();
            finish(null);
        }
        if (opts.pauseAfter && n === opts.pauseAfter) {
            // Stop reading until pauseMs passed, or without pauseMs until
            // SIGUSR1.
            call.pause();
            out({ paused: n });
            const resume = () => { out({ resumed: n }); call.resume(); };
            if (opts.pauseMs) {
                setTimeout(resume, opts.pauseMs);
            } else {
                process.once('SIGUSR1', resume);
            }
        }
    });
    // SIGTERM: stop streaming and report what was received.
    process.once('SIGTERM', () => { finish(null); call.cancel(); });
    call.on('error', (err) => finish(err));
    call.on('end', () => {});
    call.on('status', (st) => {
        if (st.code === grpc.status.OK) {
            finish(null);
        }
    });
}
