// node --test: the console's verifier (src/bulkhead/console/static/verify.js) against the
// Python implementation's vectors (written by verify_vectors.py; the path comes in
// BULKHEAD_VERIFY_VECTORS), the RFC 6962 inclusion vectors and the checkpoint vectors.
// Driven from pytest: tests/unit/console/test_verify_js.py.

import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import test from "node:test";
import { fileURLToPath } from "node:url";

import * as verify from "../../../src/bulkhead/console/static/verify.js";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const VECTORS = path.join(HERE, "..", "..", "vectors");
const python = JSON.parse(fs.readFileSync(process.env.BULKHEAD_VERIFY_VECTORS, "utf8"));

function lenient(text) {
  return Uint8Array.from(Buffer.from(text || "", "base64"));
}

function jsonFiles(folder) {
  return fs.readdirSync(folder, { recursive: true }).filter((f) => f.endsWith(".json"));
}

test("RFC 6962 inclusion vectors (transparency-dev/merkle testdata)", async () => {
  const folder = path.join(VECTORS, "rfc6962", "testdata", "inclusion");
  const files = jsonFiles(folder);
  assert.equal(files.length, 98);
  for (const file of files) {
    const c = JSON.parse(fs.readFileSync(path.join(folder, file), "utf8"));
    const run = () =>
      verify.verifyInclusion(
        c.leafIdx,
        c.treeSize,
        lenient(c.leafHash),
        (c.proof || []).map(lenient),
        lenient(c.root),
      );
    if (c.wantErr) {
      await assert.rejects(run, verify.VerifyError, file);
    } else {
      await run();
    }
  }
});

test("RFC 6962 hashes: the empty leaf and the reference tree", async () => {
  assert.equal(verify.toBase64(await verify.leafHash(new Uint8Array(0))), python.leaf_of_empty);
  const empty = await verify.leafHash(new Uint8Array(0));
  const zero = await verify.leafHash(Uint8Array.of(0));
  assert.equal(
    verify.toHex(await verify.nodeHash(empty, zero)),
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
  );
});

test("signed checkpoint vectors open with their keys, and only with them", async () => {
  const listed = JSON.parse(
    fs.readFileSync(path.join(VECTORS, "checkpoint", "vectors.json"), "utf8"),
  );
  const keys = {};
  for (const [name, key] of Object.entries(listed.keys)) {
    keys[name] = await verify.parseVkey(key.vkey);
  }
  for (const c of listed.checkpoints) {
    const note = fs.readFileSync(path.join(VECTORS, "checkpoint", c.file), "utf8");
    const opened = await verify.openCheckpoint(note, Object.values(keys), listed.origin);
    assert.equal(opened.size, c.size, c.file);
    assert.equal(verify.toHex(opened.root), c.root, c.file);
    assert.deepEqual(opened.extensions, c.extensions, c.file);
    assert.deepEqual(
      opened.signers.map((s) => s.vkey).sort(),
      c.keys.map((k) => keys[k].vkey).sort(),
    );
    const others = Object.keys(keys)
      .filter((k) => !c.keys.includes(k))
      .map((k) => keys[k]);
    await assert.rejects(
      verify.openCheckpoint(note, others, listed.origin),
      /no signature from a trusted key/,
    );
    await assert.rejects(
      verify.openCheckpoint(note, Object.values(keys), "another/log"),
      /not another\/log/,
    );
    const flipped = note
      .replace(/\n\n/, "\n\n")
      .replace(/^(.*\n)(\d+)\n/, (m, o, n) => `${o}${Number(n) + 1}\n`);
    await assert.rejects(
      verify.openCheckpoint(flipped, Object.values(keys), listed.origin),
      /does not verify/,
    );
  }
});

test("golang.org/x/mod sumdb/note signatures verify", async () => {
  const go = JSON.parse(
    fs.readFileSync(path.join(VECTORS, "checkpoint", "golang-x-mod-sumdb-note.json"), "utf8"),
  );
  for (const [file, names] of Object.entries(go.notes)) {
    const note = fs.readFileSync(path.join(VECTORS, "checkpoint", file), "utf8");
    const keys = await Promise.all(names.map((n) => verify.parseVkey(go.keys[n].vkey)));
    const opened = await verify.openNote(note, keys);
    assert.equal(opened.text, go.text);
  }
  for (const vkey of Object.keys(go.other_vkeys)) {
    assert.equal((await verify.parseVkey(vkey)).vkey, vkey); // a '+' inside the base64 key
  }
});

test("verifier keys: a wrong ID or type is refused", async () => {
  const [name, id, key] = python.vkey.split("+");
  await assert.rejects(verify.parseVkey(`${name}+00000000+${key}`), /ID does not match/);
  await assert.rejects(verify.parseVkey(`${name}+${id}`), /reads <name>/);
  await assert.rejects(verify.parseVkey(`${name}+${id}+AAAA`), /not an Ed25519 key/);
});

test("RFC 8785: the writer's canonical bytes, rebuilt from the parsed event", () => {
  for (const c of python.canonical) {
    assert.equal(verify.canonicalJson(c.value), c.text);
  }
});

test("bundles: the same verdict as the Python verifier, at the same index", async () => {
  const keys = [await verify.parseVkey(python.vkey)];
  for (const [name, { bundle, verdict }] of Object.entries(python.bundles)) {
    if (verdict.ok) {
      const report = await verify.verifyBundle(bundle, keys, python.origin);
      assert.equal(report.size, verdict.size, name);
      assert.equal(report.signedSize, verdict.signed, name);
      assert.deepEqual(
        report.signers.map((s) => s.keyIdHex),
        [keys[0].keyIdHex],
      );
    } else {
      await assert.rejects(
        verify.verifyBundle(bundle, keys, python.origin),
        (error) => {
          assert.ok(error instanceof verify.VerifyError, `${name}: ${error}`);
          if (verdict.index !== null && !error.reason.startsWith("malformed")) {
            assert.equal(
              error.index,
              verdict.index,
              `${name}: ${error.message} / ${verdict.reason}`,
            );
          }
          return true;
        },
        name,
      );
    }
  }
});

test("bundles: another log's keys verify nothing", async () => {
  const other = [await verify.parseVkey(python.other_vkey)];
  await assert.rejects(
    verify.verifyBundle(python.bundles["tenant-good"].bundle, other, python.origin),
    /no signature from a trusted key/,
  );
});

test("events: verified, altered, a bad path, an unknown key, forged proofs and notes", async () => {
  const keys = [await verify.parseVkey(python.vkey)];
  for (const c of python.events) {
    const run = verify.verifyEvent(c.event, c.proof, keys, python.origin);
    if (c.ok) {
      const { checkpoint } = await run;
      assert.equal(checkpoint.size, c.proof.size, c.name);
    } else {
      await assert.rejects(run, verify.VerifyError, c.name);
    }
  }
});
