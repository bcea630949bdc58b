// The audit log's verifier, in the browser: nothing the gateway says is taken on trust.
//
// The same checks as the Python verifier (bulkhead.audit: hashing, proofs, checkpoint,
// verify, bundle), written again over WebCrypto so an auditor's own browser does them:
// SHA-256 for the RFC 6962 / RFC 9162 §2.1 leaf and node hashes and inclusion proofs,
// Ed25519 over C2SP signed notes whose text is a C2SP tlog-checkpoint. An entry's leaf is
// its RFC 8785 (JCS) canonical JSON, which holds its own index and the previous leaf's
// hash. Every failure is a VerifyError whose message says what is wrong and where.
// No imports, no DOM: node runs this same file in the unit tests (tests/unit/console).

export class VerifyError extends Error {
  constructor(reason, index = null) {
    super(index === null ? reason : `${reason} (index ${index})`);
    this.reason = reason;
    this.index = index;
  }
}

const HASH_SIZE = 32;
const KEY_ID_SIZE = 4;
const MAX_SIGNATURES = 100;
const MAX_PROOF = 64;
const MAX_ENTRY_BYTES = 256 * 1024;
const MAX_NOTE_BYTES = 16 * 1024;
const MAX_NAME = 1024;
const MAX_TREE_SIZE = 2n ** 64n - 1n;
export const FORMAT = "bulkhead-audit-bundle/1";
const SIGNATURE_PREFIX = "\u2014 ";
const CONTROL = /[\x00-\x09\x0b-\x1f]/;
const DECIMAL = /^(0|[1-9][0-9]*)$/;
const INDEX = /^(0|[1-9][0-9]{0,18})$/;
const HEX_KEY_ID = /^[0-9a-fA-F]{8}$/;
const TOP_REQUIRED = ["format", "origin", "entries", "checkpoints"];
const TOP = new Set([...TOP_REQUIRED, "tenant", "size", "verifiers", "proofs"]);
const GENESIS = new Uint8Array(HASH_SIZE);
const utf8 = new TextEncoder();

// --- bytes ---------------------------------------------------------------------------

export function toBase64(bytes) {
  let text = "";
  for (const byte of bytes) {
    text += String.fromCharCode(byte);
  }
  return btoa(text);
}

// Standard base64; only the canonical encoding (RFC 4648 §3.5) so every changed bit counts.
export function fromBase64(text, what = "value") {
  let raw;
  try {
    raw = atob(text);
  } catch {
    throw new VerifyError(`${what} is not base64`);
  }
  const bytes = Uint8Array.from(raw, (c) => c.charCodeAt(0));
  if (toBase64(bytes) !== text) {
    throw new VerifyError(`${what} is not canonical base64`);
  }
  return bytes;
}

export function toHex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function equal(a, b) {
  if (a.length !== b.length) {
    return false;
  }
  let diff = 0;
  for (let i = 0; i < a.length; i += 1) {
    diff |= a[i] ^ b[i];
  }
  return diff === 0;
}

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

export async function sha256(bytes) {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
}

// --- the Merkle tree (RFC 9162 §2.1) -------------------------------------------------

export function leafHash(data) {
  return sha256(concat(Uint8Array.of(0), data));
}

export function nodeHash(left, right) {
  return sha256(concat(Uint8Array.of(1), left, right));
}

function requireHash(what, hash) {
  if (!(hash instanceof Uint8Array) || hash.length !== HASH_SIZE) {
    throw new VerifyError(`${what} is not a SHA-256 hash`);
  }
}

// The root an inclusion proof implies: RFC 9162 §2.1.3.2 steps 1-5, as proofs.py.
export async function rootFromInclusionProof(index, size, leaf, proof) {
  requireHash("leaf hash", leaf);
  proof.forEach((p) => requireHash("inclusion proof hash", p));
  let fn = BigInt(index);
  let sn = BigInt(size) - 1n;
  if (fn < 0n || fn > sn) {
    throw new VerifyError(`leaf index ${index} is not in a tree of size ${size}`);
  }
  let r = leaf;
  for (const p of proof) {
    if (sn === 0n) {
      throw new VerifyError("inclusion proof is longer than the path to the root");
    }
    if (fn & 1n || fn === sn) {
      r = await nodeHash(p, r);
      while (!(fn & 1n) && fn !== 0n) {
        fn >>= 1n;
        sn >>= 1n;
      }
    } else {
      r = await nodeHash(r, p);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  if (sn !== 0n) {
    throw new VerifyError("inclusion proof is shorter than the path to the root");
  }
  return r;
}

export async function verifyInclusion(index, size, leaf, proof, root) {
  requireHash("root hash", root);
  const computed = await rootFromInclusionProof(index, size, leaf, proof);
  if (!equal(computed, root)) {
    throw new VerifyError("inclusion proof leads to a different root hash");
  }
}

// Perfect subtrees of decreasing size (tree.py's CompactRange): the root of any prefix.
class CompactRange {
  constructor() {
    this.size = 0;
    this.stack = [];
  }

  async append(leaf) {
    let hash = leaf;
    let size = this.size;
    while (size % 2 === 1) {
      hash = await nodeHash(this.stack.pop(), hash);
      size = (size - 1) / 2;
    }
    this.stack.push(hash);
    this.size += 1;
  }

  async root() {
    if (this.stack.length === 0) {
      return sha256(new Uint8Array(0));
    }
    let hash = this.stack[this.stack.length - 1];
    for (let i = this.stack.length - 2; i >= 0; i -= 1) {
      hash = await nodeHash(this.stack[i], hash);
    }
    return hash;
  }
}

// --- RFC 8785 canonical JSON ---------------------------------------------------------

// JCS is defined on ECMAScript's own JSON.stringify for strings and numbers; members
// sort by UTF-16 code units, which is what Array.prototype.sort compares.
export function canonicalJson(value) {
  if (typeof value === "number" && !Number.isFinite(value)) {
    throw new VerifyError("a number in the event has no JSON form");
  }
  if (value === null || typeof value !== "object") {
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) {
    return `[${value.map(canonicalJson).join(",")}]`;
  }
  const members = Object.keys(value)
    .sort()
    .map((key) => `${JSON.stringify(key)}:${canonicalJson(value[key])}`);
  return `{${members.join(",")}}`;
}

// --- C2SP signed notes and checkpoints ------------------------------------------------

function isKeyName(name) {
  return name.length > 0 && !/[\s+\x00-\x1f]/.test(name);
}

// A verifier key `<name>+<hex key ID>+<base64(0x01 || Ed25519 public key)>`, its ID checked.
export async function parseVkey(vkey) {
  const parts = vkey.split("+");
  if (parts.length < 3 || !HEX_KEY_ID.test(parts[1]) || !isKeyName(parts[0])) {
    throw new VerifyError("a verifier key reads <name>+<8 hex digits>+<base64 key>");
  }
  const [name, hexId] = parts;
  const key = fromBase64(parts.slice(2).join("+"), "verifier key");
  if (key.length !== 33 || key[0] !== 1) {
    throw new VerifyError("verifier key is not an Ed25519 key");
  }
  const publicKey = key.slice(1);
  const keyId = (await sha256(concat(utf8.encode(`${name}\n`), key))).slice(0, KEY_ID_SIZE);
  if (toHex(keyId) !== hexId.toLowerCase()) {
    throw new VerifyError("verifier key's ID does not match its name and public key");
  }
  const cryptoKey = await crypto.subtle.importKey("raw", publicKey, { name: "Ed25519" }, false, [
    "verify",
  ]);
  return { name, keyId, keyIdHex: toHex(keyId), publicKey, vkey, cryptoKey };
}

function splitNote(note) {
  if (CONTROL.test(note)) {
    throw new VerifyError("note holds a control character other than newline");
  }
  const split = note.lastIndexOf("\n\n");
  if (split < 0) {
    throw new VerifyError("note has no blank line before its signatures");
  }
  const text = note.slice(0, split + 1);
  const block = note.slice(split + 2);
  if (!block.endsWith("\n")) {
    throw new VerifyError("note's signature block is empty or lacks its final newline");
  }
  const lines = block.slice(0, -1).split("\n");
  if (lines.length > MAX_SIGNATURES) {
    throw new VerifyError(`note has more than ${MAX_SIGNATURES} signatures`);
  }
  return [text, lines];
}

function parseSignatureLine(line) {
  if (!line.startsWith(SIGNATURE_PREFIX)) {
    throw new VerifyError("signature line does not start with an em dash");
  }
  const rest = line.slice(SIGNATURE_PREFIX.length);
  const space = rest.indexOf(" ");
  const name = space < 0 ? rest : rest.slice(0, space);
  if (!isKeyName(name)) {
    throw new VerifyError("signature line has an invalid key name");
  }
  const raw = fromBase64(space < 0 ? "" : rest.slice(space + 1), `signature by ${name}`);
  if (raw.length <= KEY_ID_SIZE) {
    throw new VerifyError(`signature by ${name} is too short to hold a key ID`);
  }
  return { name, keyId: raw.slice(0, KEY_ID_SIZE), signature: raw.slice(KEY_ID_SIZE) };
}

// Verifies a signed note with the trusted `verifiers` (from parseVkey); returns its text
// and the keys whose signatures verified. Signatures by unknown keys are ignored
// (signed-note); one by a known key that fails rejects the note.
export async function openNote(note, verifiers) {
  const [text, lines] = splitNote(note);
  const message = utf8.encode(text);
  const signers = [];
  for (const line of lines) {
    const sig = parseSignatureLine(line);
    const key = verifiers.find((v) => v.name === sig.name && equal(v.keyId, sig.keyId));
    if (key === undefined) {
      continue;
    }
    const good =
      sig.signature.length === 64 &&
      (await crypto.subtle.verify({ name: "Ed25519" }, key.cryptoKey, sig.signature, message));
    if (!good) {
      throw new VerifyError(`signature by ${key.name} (${key.keyIdHex}) does not verify`);
    }
    if (!signers.includes(key)) {
      signers.push(key);
    }
  }
  if (signers.length === 0) {
    throw new VerifyError("note carries no signature from a trusted key");
  }
  return { text, signers };
}

// A verified checkpoint: {origin, size, root, extensions, signers}.
export async function openCheckpoint(note, verifiers, expectedOrigin = null) {
  if (utf8.encode(note).length > MAX_NOTE_BYTES) {
    throw new VerifyError(`checkpoint is longer than ${MAX_NOTE_BYTES} bytes`);
  }
  const { text, signers } = await openNote(note, verifiers);
  const lines = text.split("\n").slice(0, -1);
  if (lines.length < 3) {
    throw new VerifyError("checkpoint needs origin, tree size and root hash lines");
  }
  const [origin, sizeLine, rootLine, ...extensions] = lines;
  if (!origin || extensions.some((line) => !line)) {
    throw new VerifyError("checkpoint origin and extension lines must not be empty");
  }
  if (!DECIMAL.test(sizeLine) || BigInt(sizeLine) > MAX_TREE_SIZE) {
    throw new VerifyError(`checkpoint tree size ${JSON.stringify(sizeLine)} is not a uint64`);
  }
  if (BigInt(sizeLine) > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new VerifyError("checkpoint tree size is beyond what this verifier counts");
  }
  const root = fromBase64(rootLine, "checkpoint root hash");
  requireHash("checkpoint root hash", root);
  if (expectedOrigin !== null && origin !== expectedOrigin) {
    throw new VerifyError(`checkpoint is for log ${JSON.stringify(origin)}, not ${expectedOrigin}`);
  }
  return { origin, size: Number(sizeLine), root, extensions, signers };
}

// --- one event -----------------------------------------------------------------------

// One event as the events API lists it, against its proof from the proofs API: its
// canonical form must hash to a leaf that the proof places under a checkpoint that the
// trusted keys signed. Returns {checkpoint, leaf}; throws VerifyError saying why not.
export async function verifyEvent(event, proof, verifiers, origin) {
  const leaf = await leafHash(utf8.encode(canonicalJson(event)));
  if (event.idx !== proof.index) {
    throw new VerifyError(`the proof is of entry ${proof.index}, not ${event.idx}`, event.idx);
  }
  if (toBase64(leaf) !== proof.leaf_hash) {
    throw new VerifyError(
      "the event's content does not hash to the leaf in the log: it was altered",
      event.idx,
    );
  }
  const checkpoint = await openCheckpoint(proof.checkpoint, verifiers, origin);
  if (checkpoint.size !== proof.size) {
    throw new VerifyError("the proof's tree size is not its checkpoint's", event.idx);
  }
  const path = (proof.proof || []).map((h) => fromBase64(h, "inclusion proof hash"));
  try {
    await verifyInclusion(event.idx, checkpoint.size, leaf, path, checkpoint.root);
  } catch (error) {
    throw new VerifyError(`inclusion proof fails: ${error.reason || error.message}`, event.idx);
  }
  return { checkpoint, leaf };
}

// --- an export bundle (bundle.py, verify.py) -----------------------------------------

function malformed(reason, index = null) {
  return new VerifyError(`malformed bundle: ${reason}`, index);
}

function text(value, what, limit) {
  if (typeof value !== "string") {
    throw malformed(`${what} is not a string`);
  }
  if (utf8.encode(value).length > limit) {
    throw malformed(`${what} is longer than ${limit} bytes`);
  }
  return value;
}

function hashOf(value, what, index) {
  if (typeof value !== "string" || value.length > 64) {
    throw malformed(`${what} is not a string`, index);
  }
  try {
    const raw = fromBase64(value, what);
    requireHash(what, raw);
    return raw;
  } catch {
    throw malformed(`${what} is not a canonical base64 SHA-256 hash`, index);
  }
}

function parseEntry(position, item) {
  if (item === null || typeof item !== "object" || Array.isArray(item)) {
    throw malformed(`entry ${position} is not an object with one 'body' or 'hash'`, position);
  }
  const keys = Object.keys(item);
  if (keys.length !== 1) {
    throw malformed(`entry ${position} is not an object with one 'body' or 'hash'`, position);
  }
  if (keys[0] === "body") {
    if (typeof item.body !== "string") {
      throw malformed(`entry ${position}'s body is not a string`, position);
    }
    if (item.body.isWellFormed && !item.body.isWellFormed()) {
      throw malformed(`entry ${position}'s body is not valid UTF-8`, position);
    }
    const body = utf8.encode(item.body);
    if (body.length > MAX_ENTRY_BYTES) {
      throw malformed(`entry ${position} is longer than ${MAX_ENTRY_BYTES} bytes`, position);
    }
    return { kind: "body", value: body, text: item.body };
  }
  if (keys[0] === "hash") {
    return { kind: "hash", value: hashOf(item.hash, `entry ${position}'s hash`, position) };
  }
  throw malformed(`entry ${position} has an unknown field`, position);
}

function parseProofs(value, count) {
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw malformed("'proofs' is not an object");
  }
  return Object.entries(value).map(([key, path]) => {
    if (!INDEX.test(key) || Number(key) >= count) {
      throw malformed(`proof key ${JSON.stringify(key.slice(0, 40))} is not an entry's index`);
    }
    const index = Number(key);
    if (!Array.isArray(path)) {
      throw malformed(`'proof of entry ${index}' is not a list`, index);
    }
    if (path.length > MAX_PROOF) {
      throw malformed(`proof of entry ${index} is longer than ${MAX_PROOF} hashes`, index);
    }
    return [index, path.map((h) => hashOf(h, `proof of entry ${index}`, index))];
  });
}

// Checks a decoded bundle's shape strictly, before anything is computed.
export function parseBundle(data) {
  if (data === null || typeof data !== "object" || Array.isArray(data)) {
    throw malformed("the bundle is not a JSON object");
  }
  const unknown = Object.keys(data).filter((k) => !TOP.has(k));
  if (unknown.length) {
    throw malformed(`unknown field ${JSON.stringify(unknown.sort()[0].slice(0, 40))}`);
  }
  const missing = TOP_REQUIRED.filter((k) => !(k in data));
  if (missing.length) {
    throw malformed(`field '${missing.sort()[0]}' is missing`);
  }
  if (data.format !== FORMAT) {
    throw malformed(`not a ${FORMAT} bundle`);
  }
  for (const what of ["entries", "checkpoints"]) {
    if (!Array.isArray(data[what])) {
      throw malformed(`'${what}' is not a list`);
    }
  }
  const size = "size" in data ? data.size : data.entries.length;
  if (!Number.isInteger(size) || size !== data.entries.length) {
    throw malformed("'size' is not the number of entries");
  }
  const verifiers = "verifiers" in data ? data.verifiers : [];
  if (!Array.isArray(verifiers)) {
    throw malformed("'verifiers' is not a list");
  }
  verifiers.forEach((v, i) => text(v, `verifier ${i}`, MAX_NAME));
  const tenant = data.tenant ?? null;
  return {
    origin: text(data.origin, "origin", MAX_NAME),
    tenant: tenant === null ? null : text(tenant, "tenant", MAX_NAME),
    entries: data.entries.map((item, position) => parseEntry(position, item)),
    checkpoints: data.checkpoints.map((n, i) => text(n, `checkpoint ${i}`, MAX_NOTE_BYTES)),
    proofs: parseProofs(data.proofs || {}, data.entries.length),
  };
}

function decodeEntry(position, entry) {
  let value;
  try {
    value = JSON.parse(entry.text);
  } catch {
    throw new VerifyError(`entry ${position} is not JSON`, position);
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new VerifyError(`entry ${position} is not a JSON object`, position);
  }
  return value;
}

// Leaf hashes of the entries, checking each full entry's index, link and owner.
async function leafHashesOf(bundle) {
  const hashes = [];
  for (const [position, entry] of bundle.entries.entries()) {
    if (entry.kind === "hash") {
      if (bundle.tenant === null) {
        throw new VerifyError(
          `entry ${position} of a full export is only a hash: a full export must carry every ` +
            "entry, or it can hide one",
          position,
        );
      }
      hashes.push(entry.value);
      continue;
    }
    const event = decodeEntry(position, entry);
    if (event.idx !== position) {
      throw new VerifyError(
        `entry ${position} claims index ${String(event.idx).slice(0, 40)}: rows were deleted, ` +
          "inserted or reordered",
        position,
      );
    }
    const prev = hashes.length ? hashes[hashes.length - 1] : GENESIS;
    if (event.prev !== toBase64(prev)) {
      throw new VerifyError(
        `entry ${position} does not link to entry ${position - 1}: entry ${position - 1} was ` +
          `modified or entry ${position} inserted`,
        position ? position - 1 : 0,
      );
    }
    if (bundle.tenant !== null && ![event.tenant_id, event.target_tenant].includes(bundle.tenant)) {
      throw new VerifyError(`entry ${position} is shown in full but is not the tenant's`, position);
    }
    hashes.push(await leafHash(entry.value));
  }
  return hashes;
}

async function checkCheckpoints(bundle, hashes, verifiers, origin) {
  if (bundle.checkpoints.length === 0) {
    throw new VerifyError("the log has no checkpoint to vouch for it", 0);
  }
  const tree = new CompactRange();
  const opened = [];
  let last = null;
  for (const [position, note] of bundle.checkpoints.entries()) {
    const verified = last === null ? 0 : last.size;
    let checkpoint;
    try {
      checkpoint = await openCheckpoint(note, verifiers, origin);
    } catch (error) {
      throw new VerifyError(`checkpoint ${position} does not open: ${error.reason}`, verified);
    }
    if (last !== null && checkpoint.size < last.size) {
      throw new VerifyError(
        `checkpoint ${position} goes back from size ${last.size} to ${checkpoint.size}`,
        checkpoint.size,
      );
    }
    if (last !== null && checkpoint.size === last.size && !equal(checkpoint.root, last.root)) {
      throw new VerifyError(
        `two checkpoints of size ${last.size} have different roots: the log forked`,
        checkpoint.size,
      );
    }
    if (checkpoint.size > hashes.length) {
      throw new VerifyError(
        `checkpoint ${position} covers ${checkpoint.size} entries but the log has only ` +
          `${hashes.length}: the log was truncated`,
        hashes.length,
      );
    }
    while (tree.size < checkpoint.size) {
      await tree.append(hashes[tree.size]);
    }
    if (!equal(await tree.root(), checkpoint.root)) {
      throw new VerifyError(
        `entries ${verified} to ${checkpoint.size - 1} do not match checkpoint ${position}: an ` +
          "entry was modified, inserted, deleted or moved",
        verified,
      );
    }
    opened.push(checkpoint);
    last = checkpoint;
  }
  return opened;
}

// Verifies an export bundle (the decoded JSON) against the trusted keys and the log's
// origin, both from the gateway's published keys, never from the bundle. Returns a
// report; throws VerifyError naming the first bad index.
export async function verifyBundle(data, verifiers, origin) {
  const bundle = parseBundle(data);
  if (bundle.origin !== origin) {
    throw new VerifyError(
      `the bundle is of log ${JSON.stringify(bundle.origin)}, not ${origin}`,
      0,
    );
  }
  const hashes = await leafHashesOf(bundle);
  const opened = await checkCheckpoints(bundle, hashes, verifiers, origin);
  const latest = opened[opened.length - 1];
  for (const [index, path] of bundle.proofs) {
    if (bundle.entries[index].kind !== "body") {
      throw new VerifyError(`entry ${index} has a proof but is not shown`, index);
    }
    try {
      await verifyInclusion(index, latest.size, hashes[index], path, latest.root);
    } catch (error) {
      throw new VerifyError(`inclusion proof of entry ${index} fails: ${error.reason}`, index);
    }
  }
  const signers = [...new Set(opened.flatMap((c) => c.signers))];
  return {
    origin,
    tenant: bundle.tenant,
    size: hashes.length,
    checkpoints: opened.length,
    signedSize: latest.size,
    unsigned: hashes.length - latest.size,
    ownEntries: bundle.entries.filter((e) => e.kind === "body").length,
    proofs: bundle.proofs.length,
    signers,
  };
}
