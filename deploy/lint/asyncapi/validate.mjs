// Parses the AsyncAPI document with the official parser (@asyncapi/parser), resolving its $refs to
// the JSON Schema files next to it, and fails on any error or warning.
//
//   node validate.mjs DOCUMENT             the document must parse without an error or a warning
//   node validate.mjs --self-test DOCUMENT each broken variant of DOCUMENT (below) must be refused
//                                          with the diagnostic it is made to cause
//
// `make lint-asyncapi` runs both, so a parser that stopped refusing anything would fail the lint.
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { DiagnosticSeverity, Parser } from '@asyncapi/parser';
import yaml from 'js-yaml';

// Information and hints are printed, never fatal. No warning is allowed: the document has none.
const FATAL = new Set([DiagnosticSeverity.Error, DiagnosticSeverity.Warning]);
const NAMES = { 0: 'error', 1: 'warning', 2: 'info', 3: 'hint' };

async function check(source, doc) {
  // `source` is the document's path: relative $refs (./shipment-status-event.v1.json) resolve from it.
  const parser = new Parser();
  const { document, diagnostics } = await parser.parse(doc, { source });
  const fatal = diagnostics.filter((d) => FATAL.has(d.severity));
  if (document === undefined && fatal.length === 0) {
    fatal.push({ code: 'no-document', message: 'the parser returned no document', path: [] });
  }
  if (document !== undefined) {
    // Every payload must be the resolved JSON Schema, not a dangling reference.
    for (const message of document.allMessages()) {
      const payload = message.payload()?.json() ?? {};
      if (typeof payload.$ref === 'string') {
        fatal.push({ code: 'payload-unresolved', message: `${message.id()}: ${payload.$ref}`, path: [] });
      }
    }
  }
  return { diagnostics, fatal };
}

function show(d) {
  const where = (d.path ?? []).join('/');
  const line = d.range ? `:${d.range.start.line + 1}` : '';
  return `  ${NAMES[d.severity] ?? 'error'} ${d.code}${line} ${where ? `[${where}] ` : ''}${d.message}`;
}

// Broken variants of the real document: [what is wrong, the diagnostic code it must cause, change].
// The first, unchanged, is the control: the scratch copy itself must pass.
const BROKEN = [
  ['the unchanged copy (control)', null, () => {}],
  ['a payload $ref to a missing file', 'invalid-ref', (d) => {
    d.components.messages.ShipmentStatusEvent.payload.$ref = './shipment-status-event.v0.json';
  }],
  ['an AsyncAPI 2 action (publish)', 'asyncapi-document-resolved', (d) => {
    d.operations.sendReceipt.action = 'publish';
  }],
  ['an operation on a channel that does not exist', 'invalid-ref', (d) => {
    d.operations.receiveShipmentStatus.channel.$ref = '#/channels/shipmentStatusV0';
  }],
  ['an operation message not in its channel', 'asyncapi3-operation-messages-from-referred-channel', (d) => {
    d.operations.sendReceipt.messages = [{ $ref: '#/channels/deadLetters/messages/deadLetter' }];
  }],
  ['a server protocol that is not a string', 'asyncapi-document-resolved', (d) => {
    d.servers.local.protocol = 7;
  }],
  ['an unknown Kafka binding version', 'asyncapi-document-resolved', (d) => {
    d.channels.receipts.bindings.kafka.bindingVersion = '9.9.9';
  }],
  ['a payload schema that is not a JSON Schema', 'asyncapi-document-resolved', (d) => {
    d.components.messages.DeadLetter.payload = { type: 'object', required: 'value' };
  }],
  ['a referenced JSON Schema file that is broken', 'asyncapi-document-resolved', (d, files) => {
    files['shipment-status-event.v1.json'].properties.waybill.maxLength = 'sixty-four';
  }],
  ['a Kafka message key that is not a schema', 'asyncapi-document-resolved', (d) => {
    d.components.messages.NotificationReceipt.bindings.kafka.key = 5;
  }],
];

async function selfTest(source) {
  // Each variant is written, with copies of the JSON Schema files it refers to, to a scratch folder.
  const original = yaml.load(readFileSync(source, 'utf8'));
  const folder = path.dirname(source);
  const schemas = readdirSync(folder).filter((f) => f.endsWith('.json'));
  const scratch = mkdtempSync(path.join(tmpdir(), 'asyncapi-self-test-'));
  let failures = 0;
  for (const [what, code, change] of BROKEN) {
    const doc = structuredClone(original);
    const files = Object.fromEntries(schemas.map((f) => [f, JSON.parse(readFileSync(path.join(folder, f), 'utf8'))]));
    change(doc, files);
    for (const [f, schema] of Object.entries(files)) writeFileSync(path.join(scratch, f), JSON.stringify(schema));
    const copy = path.join(scratch, path.basename(source));
    writeFileSync(copy, yaml.dump(doc));
    const { fatal } = await check(copy, readFileSync(copy, 'utf8'));
    const codes = [...new Set(fatal.map((d) => d.code))];
    const ok = code === null ? codes.length === 0 : codes.includes(code);
    failures += ok ? 0 : 1;
    const verdict = code === null ? (ok ? 'accepted' : 'NOT ACCEPTED') : ok ? 'refused' : 'NOT REFUSED';
    console.log(`${verdict}: ${what} (expected ${code ?? 'no error'}; got ${codes.join(', ') || 'nothing'})`);
  }
  rmSync(scratch, { recursive: true, force: true });
  return failures === 0;
}

async function main(args) {
  const selfTesting = args[0] === '--self-test';
  const file = selfTesting ? args[1] : args[0];
  if (!file) {
    console.error('usage: node validate.mjs [--self-test] DOCUMENT');
    return 2;
  }
  const source = path.resolve(file);
  if (selfTesting) {
    return (await selfTest(source)) ? 0 : 1;
  }
  const { diagnostics, fatal } = await check(source, readFileSync(source, 'utf8'));
  diagnostics.filter((d) => !FATAL.has(d.severity)).forEach((d) => console.log(show(d)));
  if (fatal.length > 0) {
    console.error(`${file}: refused by @asyncapi/parser`);
    fatal.forEach((d) => console.error(show(d)));
    return 1;
  }
  console.log(`${file}: valid AsyncAPI ${yaml.load(readFileSync(source, 'utf8')).asyncapi}, every $ref resolved`);
  return 0;
}

process.exitCode = await main(process.argv.slice(2));
