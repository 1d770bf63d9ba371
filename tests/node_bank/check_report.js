'use strict';
// A non-Python test's use of the expected answers (docs/bank-simulator.md,
// "The expected answer, for a test in any language"): reads the JSON of
// `cardlookup-population --expected`, opens a READY report with GetReport
// (@grpc/grpc-js, mutual TLS, the app backend's certificate) and compares
// every bank's summary and masked cards with the person's expected answer.
//
//   node check_report.js --target 127.0.0.1:50051 --ca ca.pem \
//     --cert app-backend.pem --key app-backend.key --expected expected.json \
//     --user-id u220000134 --query-id Q --password 123456
//
// Prints {"banks_checked": N, "mismatches": [...]} and exits 0 when there
// are none, 1 otherwise.

const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { parseArgs } = require('node:util');

const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const PROTOS = path.resolve(__dirname, '..', '..', 'protos');

function getReport(values) {
  const definition = protoLoader.loadSync('cardlookup/hub/v1/card_lookup_service.proto', {
    includeDirs: [PROTOS],
    keepCase: true,
    enums: String,
    longs: Number,
    defaults: true,
  });
  const Service = grpc.loadPackageDefinition(definition).cardlookup.hub.v1.CardLookupService;
  const credentials = grpc.credentials.createSsl(
    fs.readFileSync(values.ca),
    fs.readFileSync(values.key),
    fs.readFileSync(values.cert),
  );
  const client = new Service(values.target, credentials, {
    'grpc.ssl_target_name_override': 'hub.cardlookup.internal',
  });
  const name = `users/${values['user-id']}/queries/${values['query-id']}/report`;
  return new Promise((resolve, reject) => {
    client.GetReport({ name, payment_password: values.password }, { deadline: Date.now() + 20000 }, (error, answer) => {
      client.close();
      if (error) reject(error);
      else resolve(answer.report);
    });
  });
}

// --- the comparison docs/bank-simulator.md shows ---
function compare(report, person) {
  const mismatches = [];
  for (const summary of report.bank_summaries) {
    const want = person.expected[summary.bank_code];
    try {
      assert.equal(summary.debit_card_count, want.debit_card_count);
      assert.equal(summary.credit_card_count, want.credit_card_count);
      assert.equal(summary.unlisted_card_count, want.unlisted_card_count);
      const reasons = (list) => list.map((u) => `${u.reason} ${u.card_count}`).sort();
      assert.deepEqual(reasons(summary.unlisted), reasons(want.unlisted));
      const mine = report.cards.filter((c) => c.bank_code === summary.bank_code);
      const key = (c) => [c.card_type, c.first_four, c.last_four, c.number_length].join(' ');
      assert.deepEqual(mine.map(key).sort(), want.cards.map(key).sort());
    } catch (error) {
      mismatches.push({ bank_code: summary.bank_code, message: error.message });
    }
  }
  return mismatches;
}
// --- end ---

async function main() {
  const { values } = parseArgs({
    options: Object.fromEntries(
      ['target', 'ca', 'cert', 'key', 'expected', 'user-id', 'query-id', 'password'].map((k) => [k, { type: 'string' }]),
    ),
  });
  const expected = JSON.parse(fs.readFileSync(values.expected, 'utf8'));
  const person = expected.people.find((p) => p.user_id === values['user-id']);
  if (!person) throw new Error('the user is not in the expected answers');
  const report = await getReport(values);
  const mismatches = compare(report, person);
  process.stdout.write(JSON.stringify({ banks_checked: report.bank_summaries.length, mismatches }));
  process.exit(mismatches.length ? 1 : 0);
}

main().catch((error) => {
  process.stderr.write(`check_report: ${error.message}\n`);
  process.exit(2);
});
