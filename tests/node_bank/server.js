'use strict';
// A second, independent implementation of the bank side of the contract
// (cardlookup.bank.v1.CardDirectoryService, and the optional
// CardCaseService for "not my card" cases and CardSessionService, the
// session stream) in another gRPC stack: Node.js
// with @grpc/grpc-js, loading the .proto files at run time. It exists to
// prove the contract and docs/bank-integration.md are enough to build a
// bank without reading the Python code; the conformance suite and the hub
// must accept it exactly like the Python simulator.
//
//   node server.js --listen 127.0.0.1:0 --bank-code 102 \
//     --cert bank-102.pem --key bank-102.key --ca ca.pem \
//     --consent-key hub-consent-dev-1=consent-signing.pub --data cards.json
//
// Prints "READY <port>" on stdout once listening; exits on SIGTERM/SIGINT.
// The data file holds masked cards only (see README.md). Logs carry status
// codes and reasons, never a name, ID number or card digits.

const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { parseArgs } = require('node:util');

const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const protobuf = require('protobufjs');
const { ReflectionService } = require('@grpc/reflection');
const { HealthImplementation, protoPath: HEALTH_PROTO } = require('grpc-health-check');

const CONTRACT_ROOT = path.resolve(__dirname, '..', '..', 'protos');
const CONTRACT = 'cardlookup/bank/v1/card_directory.proto';
// The google/rpc protos the repository ships for non-Python clients.
const RPC_STATUS = ['google/rpc/status.proto', 'google/rpc/error_details.proto'];
const DOMAIN = 'cardlookup.bank.v1';
const SERVICE_NAME = 'cardlookup.bank.v1.CardDirectoryService';
const CASE_SERVICE_NAME = 'cardlookup.bank.v1.CardCaseService';
const ERROR_INFO_TYPE_URL = 'type.googleapis.com/google.rpc.ErrorInfo';
const SUBJECT_DIGEST_PREFIX = 'cardlookup.bank.v1/subject\n';
const CLOCK_SKEW_MS = 5 * 60 * 1000;
const MAX_NAME_LENGTH = 64;
const QUERY_ID_SHAPE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
// JavaScript's `$` (without the m flag) matches only at the very end, so
// these patterns match whole values: a trailing newline is refused.
const ID_SHAPE = /^[0-9]{17}[0-9X]$/;
// Printable on one line, as the hub accepts names: no control, format,
// surrogate, private-use or unassigned character, and no separator other than
// the ASCII space (a trailing newline is refused, never stripped).
const NOT_PRINTABLE = /[\p{C}\p{Zl}\p{Zp}]|(?! )\p{Zs}/u;
// R13, one card one reason: a card with several conditions counts under the
// first of these (docs/bank-integration.md, "Which cards are listed (R13)").
const R13_PRECEDENCE = [
  'UNLISTED_REASON_ID_DOCUMENT_EXPIRED',
  'UNLISTED_REASON_NO_PHONE_ON_FILE',
  'UNLISTED_REASON_CARD_NOT_PRESENT_DISABLED',
];
// Summary entries in the contract's enum order.
const REASON_ORDER = [
  'UNLISTED_REASON_NO_PHONE_ON_FILE',
  'UNLISTED_REASON_ID_DOCUMENT_EXPIRED',
  'UNLISTED_REASON_CARD_NOT_PRESENT_DISABLED',
];
const ID_WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
const ID_CHECK = '10X98765432';

// ---------------------------------------------------------------- options

function readOptions(argv) {
  const { values } = parseArgs({
    args: argv,
    options: {
      listen: { type: 'string', default: '127.0.0.1:0' },
      'bank-code': { type: 'string' },
      cert: { type: 'string' },
      key: { type: 'string' },
      ca: { type: 'string' },
      data: { type: 'string' },
      'consent-key': { type: 'string', multiple: true, default: [] },
      'hub-name': { type: 'string', default: 'hub-client.cardlookup.internal' },
      'no-card-cases': { type: 'boolean', default: false },
    },
    strict: true,
  });
  for (const required of ['bank-code', 'cert', 'key', 'ca', 'data']) {
    if (!values[required]) throw new Error(`--${required} is required`);
  }
  if (values['consent-key'].length === 0) throw new Error('at least one --consent-key KEY_ID=PEM_FILE is required');
  const trustedKeys = new Map();
  for (const entry of values['consent-key']) {
    const eq = entry.indexOf('=');
    if (eq <= 0) throw new Error(`--consent-key wants KEY_ID=PEM_FILE, got ${entry}`);
    trustedKeys.set(entry.slice(0, eq), crypto.createPublicKey(fs.readFileSync(entry.slice(eq + 1))));
  }
  return {
    listen: values.listen,
    bankCode: values['bank-code'],
    cert: fs.readFileSync(values.cert),
    key: fs.readFileSync(values.key),
    ca: fs.readFileSync(values.ca),
    data: JSON.parse(fs.readFileSync(values.data, 'utf8')),
    trustedKeys,
    hubName: values['hub-name'],
    cardCases: !values['no-card-cases'],
  };
}

// ---------------------------------------------------------------- contract

function loadContract() {
  const definition = protoLoader.loadSync(CONTRACT, {
    includeDirs: [CONTRACT_ROOT],
    keepCase: true,
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  // Server reflection lists what this package definition holds: the
  // contract's services and the health service (it adds itself).
  const healthDefinition = protoLoader.loadSync(HEALTH_PROTO, { keepCase: true });
  const reflection = new ReflectionService({ ...definition, ...healthDefinition });
  const bankPackage = grpc.loadPackageDefinition(definition).cardlookup.bank.v1;
  const service = bankPackage.CardDirectoryService.service;
  // The same .proto, through protobufjs directly, to decode the signed
  // Consent bytes (not an RPC message, so grpc-js has no decoder for it).
  const root = new protobuf.Root();
  root.resolvePath = (origin, target) => (path.isAbsolute(target) ? target : path.join(CONTRACT_ROOT, target));
  root.loadSync([CONTRACT, ...RPC_STATUS], { keepCase: true });
  const scopes = root.lookupEnum('cardlookup.bank.v1.ConsentScope').values;
  return {
    service,
    reflection,
    caseService: bankPackage.CardCaseService.service,
    Consent: root.lookupType('cardlookup.bank.v1.Consent'),
    LIST_MASKED_CARDS: scopes.CONSENT_SCOPE_LIST_MASKED_CARDS,
    OPEN_CARD_CASE: scopes.CONSENT_SCOPE_OPEN_CARD_CASE,
    Status: root.lookupType('google.rpc.Status'),
    ErrorInfo: root.lookupType('google.rpc.ErrorInfo'),
  };
}

// ---------------------------------------------------------------- errors

class Refusal extends Error {
  constructor(code, reason, message, metadata = {}) {
    super(message);
    this.code = code;
    this.reason = reason;
    this.metadata = metadata;
  }
}

function statusFor(contract, refusal) {
  // google.rpc.Status in the grpc-status-details-bin trailer, carrying an
  // ErrorInfo: what every gRPC stack's rich-error reader looks for.
  const info = contract.ErrorInfo.encode(
    contract.ErrorInfo.create({ reason: refusal.reason, domain: DOMAIN, metadata: refusal.metadata }),
  ).finish();
  const status = contract.Status.encode(
    contract.Status.create({
      code: refusal.code,
      message: refusal.message,
      details: [{ type_url: ERROR_INFO_TYPE_URL, value: info }],
    }),
  ).finish();
  const trailers = new grpc.Metadata();
  trailers.set('grpc-status-details-bin', Buffer.from(status));
  return { code: refusal.code, details: refusal.message, metadata: trailers };
}

// ---------------------------------------------------------------- request

function idCheckChar(first17) {
  let total = 0;
  for (let i = 0; i < 17; i += 1) total += Number(first17[i]) * ID_WEIGHTS[i];
  return ID_CHECK[total % 11];
}

function isValidIdNumber(id) {
  return ID_SHAPE.test(id) && idCheckChar(id.slice(0, 17)) === id[17];
}

function invalid(field, detail) {
  return new Refusal(grpc.status.INVALID_ARGUMENT, 'INVALID_REQUEST', `${field}: ${detail}`, { field });
}

function validateRequest(request) {
  if (!QUERY_ID_SHAPE.test(request.query_id)) throw invalid('query_id', 'must be a lowercase UUID (36 characters)');
  const subject = request.subject;
  const name = subject ? subject.full_name : '';
  if (!name.trim()) throw invalid('subject.full_name', 'is required');
  if ([...name].length > MAX_NAME_LENGTH) throw invalid('subject.full_name', 'is too long');
  if (NOT_PRINTABLE.test(name) || name !== name.trim()) {
    throw invalid('subject.full_name', 'must be printable characters on one line, not padded');
  }
  if (!isValidIdNumber(subject.id_number)) throw invalid('subject.id_number', 'is not a valid ID number');
  const consent = request.consent;
  if (!consent || (!consent.consent.length && !consent.signature.length && !consent.key_id)) {
    throw invalid('consent', 'is required');
  }
}

// ---------------------------------------------------------------- consent

function subjectDigest(queryId, idNumber, fullName) {
  const text = `${SUBJECT_DIGEST_PREFIX}${queryId}\n${idNumber}\n${fullName}`;
  return crypto.createHash('sha256').update(text, 'utf8').digest();
}

function timestampMs(ts) {
  const seconds = typeof ts.seconds === 'number' ? ts.seconds : Number(ts.seconds.toString());
  return seconds * 1000 + Math.floor((ts.nanos || 0) / 1e6);
}

function denied(reason, message) {
  return new Refusal(grpc.status.PERMISSION_DENIED, reason, message);
}

// The steps of docs/bank-integration.md, in its order: the signature is
// checked over the bytes as received before anything in them is trusted.
function verifyConsent(contract, trustedKeys, signed, expected, nowMs) {
  const key = trustedKeys.get(signed.key_id);
  if (!key) throw denied('CONSENT_UNKNOWN_KEY', 'the consent is signed with a key this bank does not trust');
  let valid = false;
  try {
    valid = crypto.verify(null, signed.consent, key, signed.signature);
  } catch {
    valid = false; // e.g. a signature of the wrong length
  }
  if (!valid) throw denied('CONSENT_SIGNATURE_INVALID', 'the consent signature does not verify');
  let consent;
  try {
    consent = contract.Consent.decode(signed.consent);
  } catch {
    throw denied('CONSENT_MALFORMED', 'the signed consent bytes are not a Consent message');
  }
  const scope = expected.scope === undefined ? contract.LIST_MASKED_CARDS : expected.scope;
  if (consent.scope !== scope) {
    throw denied('CONSENT_SCOPE_INVALID', 'the consent does not allow this call');
  }
  if (consent.bank_code !== expected.bankCode) throw denied('CONSENT_WRONG_BANK', 'the consent is for another bank');
  if (consent.query_id !== expected.queryId) throw denied('CONSENT_WRONG_QUERY', 'the consent is for another query');
  const digest = subjectDigest(expected.queryId, expected.idNumber, expected.fullName);
  const given = Buffer.from(consent.subject_digest || []);
  if (given.length !== digest.length || !crypto.timingSafeEqual(given, digest)) {
    throw denied('CONSENT_SUBJECT_MISMATCH', 'the consent is for another subject');
  }
  if (scope === contract.OPEN_CARD_CASE && consent.card_ref !== expected.cardRef) {
    throw denied('CONSENT_CARD_MISMATCH', 'the consent is for another card');
  }
  if (!consent.issue_time || !consent.expire_time) {
    throw denied('CONSENT_MALFORMED', 'the consent lacks its issue or expire time');
  }
  if (timestampMs(consent.issue_time) - CLOCK_SKEW_MS > nowMs) {
    throw denied('CONSENT_NOT_YET_VALID', 'the consent is issued in the future');
  }
  if (nowMs >= timestampMs(consent.expire_time)) throw denied('CONSENT_EXPIRED', 'the consent has expired');
}

// ---------------------------------------------------------------- service

function callerNames(call) {
  const auth = call.getAuthContext();
  const cert = auth && auth.sslPeerCertificate;
  if (!cert || !cert.subjectaltname) return [];
  return cert.subjectaltname
    .split(', ')
    .filter((entry) => entry.startsWith('DNS:'))
    .map((entry) => entry.slice(4));
}

function unlistedCounts(unlistedCards) {
  const counts = new Map();
  for (const card of unlistedCards) {
    const reason = R13_PRECEDENCE.find((r) => card.conditions.includes(r));
    if (reason) counts.set(reason, (counts.get(reason) || 0) + 1);
  }
  return REASON_ORDER.filter((r) => counts.has(r)).map((r) => ({ reason: r, card_count: counts.get(r) }));
}

function answerFor(data, idNumber, fullName) {
  // An unknown subject, or a name that does not match our records, gets the
  // same shape as a customer with no cards.
  const known = data.subjects[idNumber];
  const held = known && known.full_name === fullName ? known : { cards: [], unlisted_cards: [] };
  const count = (type) => held.cards.filter((card) => card.card_type === type).length;
  return {
    cards: held.cards,
    summary: {
      listed_card_count: held.cards.length,
      debit_card_count: count('CARD_TYPE_DEBIT'),
      credit_card_count: count('CARD_TYPE_CREDIT'),
      unlisted: unlistedCounts(held.unlisted_cards),
    },
  };
}

// The checks of one ListCards request (caller, request, consent) and its
// answer; throws a Refusal. Shared by ListCards and the session's exchanges.
function checkedAnswer(contract, options, call, request) {
  if (!callerNames(call).includes(options.hubName)) {
    throw new Refusal(grpc.status.PERMISSION_DENIED, 'CALLER_NOT_HUB', 'only the hub may call');
  }
  validateRequest(request);
  verifyConsent(
    contract,
    options.trustedKeys,
    request.consent,
    {
      bankCode: options.bankCode,
      queryId: request.query_id,
      idNumber: request.subject.id_number,
      fullName: request.subject.full_name,
    },
    Date.now(),
  );
  // The answer is a pure function of the subject, so a retry with the same
  // query id gets exactly the same stream (idempotency).
  return answerFor(options.data, request.subject.id_number, request.subject.full_name);
}

function listCardsHandler(contract, options) {
  return (call) => {
    let answer;
    try {
      answer = checkedAnswer(contract, options, call, call.request);
    } catch (error) {
      if (!(error instanceof Refusal)) throw error;
      process.stderr.write(`refused: ${error.reason}\n`);
      call.emit('error', statusFor(contract, error));
      return;
    }
    for (const card of answer.cards) call.write({ card });
    call.write({ summary: answer.summary });
    call.end();
  };
}

// ---------------------------------------------------------------- session

// The optional session stream (card_session.proto): many ListCards
// exchanges over one stream. Each exchange is checked and answered like a
// ListCards call, tagged with its exchange_id and query_id; a refusal ends
// only that exchange (its `error`). Answers here are computed at once, so no
// exchange ever waits behind another; a bank with slow lookups runs each as a
// promise of its own and writes its messages when they are ready.
const SESSION_CONTRACT = 'cardlookup/bank/v1/card_session.proto';

function loadSessionService() {
  const definition = protoLoader.loadSync(SESSION_CONTRACT, {
    includeDirs: [CONTRACT_ROOT],
    keepCase: true,
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  return grpc.loadPackageDefinition(definition).cardlookup.bank.v1.CardSessionService.service;
}

function listCardsSessionHandler(contract, options) {
  return (call) => {
    if (!callerNames(call).includes(options.hubName)) {
      const refusal = new Refusal(grpc.status.PERMISSION_DENIED, 'CALLER_NOT_HUB', 'only the hub may call');
      call.emit('error', statusFor(contract, refusal));
      return;
    }
    call.on('data', (message) => {
      const exchangeId = message.exchange_id;
      if (message.kind === 'cancel') return; // every exchange is already answered
      if (message.kind !== 'list_cards' || exchangeId === '0') {
        const refusal = invalid('kind', 'a session request starts (list_cards) or cancels an exchange');
        call.emit('error', statusFor(contract, refusal));
        return;
      }
      const request = message.list_cards;
      const tag = { exchange_id: exchangeId, query_id: request.query_id };
      try {
        const answer = checkedAnswer(contract, options, call, request);
        for (const card of answer.cards) call.write({ ...tag, card });
        call.write({ ...tag, summary: answer.summary });
      } catch (error) {
        if (!(error instanceof Refusal)) throw error;
        process.stderr.write(`refused exchange: ${error.reason}\n`);
        const { code, reason, metadata, message: text } = error;
        call.write({ ...tag, error: { code, reason, domain: DOMAIN, metadata, message: text } });
      }
    });
    // The hub half-closed: every exchange is answered, so end the stream OK.
    call.on('end', () => call.end());
  };
}

// ---------------------------------------------------------------- cases

const CARD_REF_SHAPE = /^[A-Za-z0-9_-]{1,64}$/;
const NEXT_STEPS = {
  CARD_CASE_KIND_NOT_RECOGNISED: {
    status: 'CARD_CASE_STATUS_CARD_SUSPENDED',
    next_step: '已受理并暂停该卡。请于30日内携带本人身份证件到我行网点核实。',
    next_step_english: 'Case opened and the card suspended. Bring your ID to one of our branches within 30 days.',
  },
  CARD_CASE_KIND_CLOSE_REQUESTED: {
    status: 'CARD_CASE_STATUS_RECEIVED',
    next_step: '已受理销户申请。请携带本人身份证件到我行网点办理。',
    next_step_english: 'Closure request received. Bring your ID to one of our branches to complete it.',
  },
};

// OpenCardCase: the ListCards checks with the case scope and the card named
// in the consent; one case per (query id, card_ref), so a retry gets the
// same reference (derived, not stored).
function openCardCaseHandler(contract, options) {
  return (call, callback) => {
    const request = call.request;
    try {
      if (!callerNames(call).includes(options.hubName)) {
        throw new Refusal(grpc.status.PERMISSION_DENIED, 'CALLER_NOT_HUB', 'only the hub may call');
      }
      validateRequest(request);
      if (!CARD_REF_SHAPE.test(request.card_ref)) throw invalid('card_ref', 'is not a card reference');
      const steps = NEXT_STEPS[request.kind];
      if (!steps) throw invalid('kind', 'must be NOT_RECOGNISED or CLOSE_REQUESTED');
      verifyConsent(
        contract,
        options.trustedKeys,
        request.consent,
        {
          bankCode: options.bankCode,
          queryId: request.query_id,
          idNumber: request.subject.id_number,
          fullName: request.subject.full_name,
          scope: contract.OPEN_CARD_CASE,
          cardRef: request.card_ref,
        },
        Date.now(),
      );
      const held = options.data.subjects[request.subject.id_number];
      if (!held || !held.cards.some((card) => card.card_ref === request.card_ref)) {
        throw new Refusal(grpc.status.NOT_FOUND, 'CARD_NOT_FOUND', 'no such card for this subject');
      }
      const digest = crypto
        .createHash('sha256')
        .update(`${options.bankCode}\n${request.query_id}\n${request.card_ref}`, 'utf8')
        .digest('hex');
      callback(null, { case_reference: `N${options.bankCode}-${digest.slice(0, 12).toUpperCase()}`, ...steps });
    } catch (error) {
      if (!(error instanceof Refusal)) throw error;
      process.stderr.write(`refused case: ${error.reason}\n`);
      callback(statusFor(contract, error));
    }
  };
}

function main() {
  const options = readOptions(process.argv.slice(2));
  const contract = loadContract();
  const server = new grpc.Server();
  server.addService(contract.service, { ListCards: listCardsHandler(contract, options) });
  server.addService(loadSessionService(), { ListCardsSession: listCardsSessionHandler(contract, options) });
  if (options.cardCases) {
    server.addService(contract.caseService, { OpenCardCase: openCardCaseHandler(contract, options) });
  }
  // grpc.health.v1 and server reflection on the same mTLS port, as the bank
  // guide recommends ("Health and reflection"); any client certificate from
  // the CA may ask (only ListCards and OpenCardCase check the caller).
  const served = { '': 'SERVING', [SERVICE_NAME]: 'SERVING' };
  if (options.cardCases) served[CASE_SERVICE_NAME] = 'SERVING';
  const health = new HealthImplementation(served);
  health.addToServer(server);
  contract.reflection.addToServer(server);
  const credentials = grpc.ServerCredentials.createSsl(
    options.ca,
    [{ private_key: options.key, cert_chain: options.cert }],
    true, // require a client certificate issued by the CA
  );
  server.bindAsync(options.listen, credentials, (error, port) => {
    if (error) {
      process.stderr.write(`cannot listen on ${options.listen}: ${error.message}\n`);
      process.exit(1);
    }
    process.stdout.write(`READY ${port}\n`);
  });
  const stop = () => {
    for (const name of Object.keys(served)) health.setStatus(name, 'NOT_SERVING');
    setTimeout(() => server.forceShutdown(), 2000).unref();
    server.tryShutdown(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main();
