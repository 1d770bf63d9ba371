'use strict';
// An app backend's view of the hub's refusals, in Node.js: calls
// cardlookup.hub.v1.CardLookupService with @grpc/grpc-js over mutual TLS and
// decodes each refusal's `grpc-status-details-bin` trailer with protobufjs
// and the google/rpc protos the repository ships (protos/google/rpc/), as
// docs/app-backend.md ("Where the details are, in any language") says a
// client in any language does. Nothing here comes from the Python code.
//
//   node decode_status.js --target 127.0.0.1:50051 --ca ca.pem \
//     --cert app-backend.pem --key app-backend.key < calls.json
//
// stdin: a JSON list of {"method": "StartVerification", "request": {...}}
// (request fields by their proto names), or {"method", "raw_hex": "ff…"} to
// send raw bytes as the request. stdout: one JSON list, for each
// call {"method", "ok": true} or {"method", "code", "details": [...]}, each
// detail {"type": "google.rpc.ErrorInfo", ...its fields as JSON}; an
// ErrorInfo also says whether its reason is a value of the shipped
// cardlookup.hub.v1.ErrorReason (`reason_in_contract`).

const fs = require('node:fs');
const path = require('node:path');
const { parseArgs } = require('node:util');

const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const protobuf = require('protobufjs');

const PROTOS = path.resolve(__dirname, '..', '..', 'protos');
const SERVICE_PROTO = 'cardlookup/hub/v1/card_lookup_service.proto';
const TLS_NAME = 'hub.cardlookup.internal';

function loadRpcTypes() {
  // Resolve every import under protos/ (google/protobuf/* are protobufjs'
  // built-in common types).
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => path.join(PROTOS, target);
  root.loadSync(
    ['google/rpc/status.proto', 'google/rpc/error_details.proto', 'cardlookup/hub/v1/error_reason.proto'],
    { keepCase: true },
  );
  root.resolveAll();
  return root;
}

function decodeDetails(root, trailer) {
  const Status = root.lookupType('google.rpc.Status');
  const status = Status.decode(trailer);
  return status.details.map((any) => {
    const typeName = any.type_url.slice(any.type_url.lastIndexOf('/') + 1);
    let type;
    try {
      type = root.lookupType(typeName);
    } catch {
      return { type: typeName };
    }
    const message = type.toObject(type.decode(any.value), { longs: String, defaults: true });
    if (typeName === 'google.rpc.ErrorInfo') {
      // A reason this copy of the contract names (an unknown one would be
      // treated by its status code).
      const reasons = root.lookupEnum('cardlookup.hub.v1.ErrorReason').values;
      message.reason_in_contract = Object.hasOwn(reasons, message.reason);
    }
    return { type: typeName, ...message };
  });
}

function call(client, method, request, rawHex) {
  const options = { deadline: Date.now() + 20000 };
  return new Promise((resolve) => {
    if (rawHex !== undefined) {
      // Raw request bytes, e.g. not a protobuf message at all.
      const identity = (bytes) => bytes;
      client.makeUnaryRequest(
        `/cardlookup.hub.v1.CardLookupService/${method}`,
        identity,
        identity,
        Buffer.from(rawHex, 'hex'),
        new grpc.Metadata(),
        options,
        (error) => resolve(error || null),
      );
      return;
    }
    client[method](request, options, (error) => {
      resolve(error || null);
    });
  });
}

async function main() {
  const { values } = parseArgs({
    options: {
      target: { type: 'string' },
      ca: { type: 'string' },
      cert: { type: 'string' },
      key: { type: 'string' },
    },
  });
  const plan = JSON.parse(fs.readFileSync(0, 'utf8'));
  const definition = protoLoader.loadSync(SERVICE_PROTO, {
    includeDirs: [PROTOS],
    keepCase: true,
    enums: String,
    longs: String,
    defaults: false,
  });
  const Service = grpc.loadPackageDefinition(definition).cardlookup.hub.v1.CardLookupService;
  const credentials = grpc.credentials.createSsl(
    fs.readFileSync(values.ca),
    fs.readFileSync(values.key),
    fs.readFileSync(values.cert),
  );
  const client = new Service(values.target, credentials, {
    'grpc.ssl_target_name_override': TLS_NAME,
    'grpc.default_authority': TLS_NAME,
  });
  const root = loadRpcTypes();
  const results = [];
  for (const { method, request, raw_hex: rawHex } of plan) {
    const error = await call(client, method, request, rawHex);
    if (error === null) {
      results.push({ method, ok: true });
      continue;
    }
    const trailer = error.metadata.get('grpc-status-details-bin');
    results.push({
      method,
      code: grpc.status[error.code],
      details: trailer.length ? decodeDetails(root, trailer[0]) : [],
    });
  }
  client.close();
  process.stdout.write(JSON.stringify(results));
}

main().catch((error) => {
  process.stderr.write(`decode_status: ${error.message}\n`);
  process.exit(1);
});
