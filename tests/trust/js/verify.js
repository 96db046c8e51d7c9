// tuf-js, a TUF client tilsit did not write, verifying a tilsit index.
//
//   node verify.js BASE ROOT PATH...
//
// BASE is the index base URL (http://host/<index>/): metadata under BASE/tuf/,
// targets under BASE. ROOT is the trusted root.json. Each PATH is refreshed,
// looked up and downloaded (by its hashed name); "OK <path> <length>" is printed
// per target. Any fault prints "FAIL <ErrorClass> <message>" and exits 1.
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const { Updater } = require('tuf-js');

async function main() {
  const [base, rootJson, ...targets] = process.argv.slice(2);
  if (!base || !rootJson) throw new Error('usage: node verify.js BASE ROOT PATH...');
  const index = base.endsWith('/') ? base : `${base}/`;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tilsit-tufjs-'));
  try {
    const metadataDir = path.join(dir, 'metadata');
    const targetDir = path.join(dir, 'targets');
    fs.mkdirSync(metadataDir);
    fs.mkdirSync(targetDir);
    // tuf-js has no bootstrap argument: the trusted root is <metadataDir>/root.json.
    fs.copyFileSync(rootJson, path.join(metadataDir, 'root.json'));
    const updater = new Updater({
      metadataDir,
      metadataBaseUrl: `${index}tuf`,
      targetDir,
      targetBaseUrl: index,
    });
    await updater.refresh();
    for (const target of targets) {
      const info = await updater.getTargetInfo(target);
      if (!info) throw new Error(`not a signed target: ${target}`);
      await updater.downloadTarget(info, path.join(targetDir, `${info.hashes.sha256}`));
      console.log('OK', target, info.length);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.log('FAIL', err.constructor.name, err.message);
  process.exit(1);
});
