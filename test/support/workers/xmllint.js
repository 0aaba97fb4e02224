'use strict';
// libxml2's xmllint compiled to WebAssembly (the xmllint-wasm package), run in this worker thread:
// the schema checks need no system package. The package's own validateXML starts a thread and
// compiles the 0.8 MB module for every document (about 50 ms); here the module is compiled once
// and each document gets a fresh instance (about 3 ms), as a fresh xmllint process would.
const { readFileSync } = require('node:fs');
const { dirname, join } = require('node:path');

const packageDir = dirname(require.resolve('xmllint-wasm/package.json'));
const runXmllint = require(join(packageDir, 'xmllint-node.js'));
const compiled = new WebAssembly.Module(readFileSync(join(packageDir, 'xmllint.wasm')));

const PAGE = 65536;

/** Runs xmllint with `args` over in-memory files; answers its exit code and stderr. */
function xmllint(files, args, bytes) {
  return new Promise((resolve) => {
    let stderr = '';
    const pages = Math.min(65536, 512 + Math.ceil((bytes * 16) / PAGE));
    runXmllint({
      inputFiles: files,
      arguments: args,
      print: () => undefined,
      printErr: (text) => void (stderr += `${text}\n`),
      onExit: (exitCode) => resolve({ exitCode, stderr }),
      onAbort: (reason) => resolve({ exitCode: -1, stderr: `xmllint aborted: ${reason}` }),
      wasmMemory: new WebAssembly.Memory({ initial: 256, maximum: pages }),
      instantiateWasm(imports, receive) {
        WebAssembly.instantiate(compiled, imports).then((instance) => receive(instance, compiled));
        return {};
      },
    }).catch((err) => resolve({ exitCode: -1, stderr: `xmllint failed: ${err && err.message ? err.message : String(err)}` }));
  });
}

const schemas = new Map();

function schemaFile(path) {
  let file = schemas.get(path);
  if (!file) schemas.set(path, (file = { fileName: 'schema.xsd', contents: readFileSync(path, 'utf8') }));
  return file;
}

/**
 * xmllint --noout --nonet [--schema SCHEMA] document.xml: the messages, one per line, and
 * whether the document is well-formed (and valid, with a schema). Exit code 0 is valid, 1 not
 * well-formed, 3 and 4 invalid; anything else is a failure of the tool, thrown.
 */
async function check(xml, schemaPath) {
  const files = [{ fileName: 'document.xml', contents: xml }];
  const args = ['--noout', '--nonet'];
  if (schemaPath) {
    files.push(schemaFile(schemaPath));
    args.push('--schema', 'schema.xsd');
  }
  args.push('document.xml');
  const { exitCode, stderr } = await xmllint(files, args, Buffer.byteLength(xml));
  if (![0, 1, 3, 4].includes(exitCode)) throw new Error(`xmllint (WebAssembly) exited with ${exitCode}: ${stderr.trim()}`);
  const messages = stderr.split('\n').filter((line) => line && line !== 'document.xml validates');
  return { ok: exitCode === 0, messages };
}

module.exports = { check };
