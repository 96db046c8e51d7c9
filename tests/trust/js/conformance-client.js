// tuf-conformance's client-under-test CLI protocol (CLIENT-CLI.md) for tuf-js:
//
//   node conformance-client.js --metadata-dir D init ROOT
//   node conformance-client.js --metadata-dir D --metadata-url U refresh
//   node conformance-client.js --metadata-dir D --metadata-url U --target-name P \
//        --target-base-url T --target-dir X download
//
// Exit 0 on success, 1 on any failure. Metadata is kept in D under unversioned names.
'use strict';
const fs = require('fs');
const path = require('path');
const { Updater } = require('tuf-js');

function parse(argv) {
  const opts = {};
  const rest = [];
  for (let i = 0; i < argv.length; i += 1) {
    if (argv[i].startsWith('--')) {
      opts[argv[i].slice(2)] = argv[i + 1];
      i += 1;
    } else {
      rest.push(argv[i]);
    }
  }
  return { opts, command: rest[0], args: rest.slice(1) };
}

async function main() {
  const { opts, command, args } = parse(process.argv.slice(2));
  const metadataDir = opts['metadata-dir'];
  if (command === 'init') {
    fs.mkdirSync(metadataDir, { recursive: true });
    fs.copyFileSync(args[0], path.join(metadataDir, 'root.json'));
    return;
  }
  const targetDir = opts['target-dir'] || path.join(metadataDir, 'targets');
  fs.mkdirSync(targetDir, { recursive: true });
  const updater = new Updater({
    metadataDir,
    metadataBaseUrl: opts['metadata-url'],
    targetDir,
    targetBaseUrl: opts['target-base-url'],
  });
  await updater.refresh();
  if (command === 'refresh') return;
  if (command !== 'download') throw new Error(`unknown command ${command}`);
  const info = await updater.getTargetInfo(opts['target-name']);
  if (!info) throw new Error(`not a signed target: ${opts['target-name']}`);
  const cached = await updater.findCachedTarget(info);
  if (!cached) await updater.downloadTarget(info);
}

main().catch((err) => {
  console.log('FAIL', err.constructor.name, err.message);
  process.exit(1);
});
