# ruff: noqa: RUF001 - the Chinese sample prompt keeps its full-width punctuation.
"""Guardrails: detection quality on the labelled corpus, and the cost of a scan.

    .venv/bin/python bench/guard_bench.py [--seconds 1]

Prints precision and recall per entity (and per language) on
tests/vectors/guard/pii.jsonl, injection recall and false-positive rate on
tests/vectors/guard/injection.jsonl (threshold 0.5), then the time of a
request scan (`Guard.scan_request`, every entity and injection on) per
corpus prompt and per KB of a longer prompt, and the CPU the streaming
filter adds per chunk.  Targets (issue 7): PII recall >= 98% and precision
>= 95%; injection recall >= 90% at <= 2% false positives; <= 100 us per KB;
streaming adds <= 1 ms to the time to first byte.

The learned second stage (issue 19, `guard/learned`): recall and false-positive
rate per language and kind on the hand-written parts of the dev split (session
11's texts; the third hand's of session 12; the licensed public prompts of
session 14 and the attacks planted in them), the new frozen test split of
session 11 (test_varied.jsonl), the first frozen test split (test.jsonl), the
two hand-written sets (handwritten2.jsonl, held out in session 10 and reported
again since; handwritten.jsonl, used for tuning after its third scoring) and
the older corpus above, for the rules alone, the learned stage alone and both
(rules first, the learned score on what they pass); the RSS its first load
adds; the wall time of a whole input scan (`Guard.scan_request`,
injection_learned on) of a 2 KiB prompt, p50 and p99 on one thread. Targets:
recall >= 0.90 per language at <= 2 % FPR; p50 <= 2 ms,
p99 <= 10 ms; RSS added <= 60 MB.  `--learned` prints only this part.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bulkhead.guard import Action, EntityScanner, Guard, GuardConfig, InjectionDetector
from bulkhead.guard.learned import shared_scorer

CORPUS = Path(__file__).resolve().parent.parent / "tests" / "vectors" / "guard"
LEARNED_SETS = (
    ("dev split, hand-written part (tuned on)", "learned/dev.jsonl", "varied-"),
    ("dev split, third hand (session 12, tuned on)", "learned/dev.jsonl", "hand3-"),
    ("dev split, fourth hand (session 14, tuned on)", "learned/dev.jsonl", "hand4-"),
    ("dev split, fifth hand (session 15, tuned on)", "learned/dev.jsonl", "hand5-"),
    ("dev split, sixth hand (session 15, tuned on)", "learned/dev.jsonl", "hand6-"),
    ("dev split, public prompts and planted attacks (session 14)", "learned/dev.jsonl", "public-"),
    ("new frozen test split (session 11)", "learned/test_varied.jsonl", ""),
    ("frozen test split", "learned/test.jsonl", ""),
    ("hand-written set 2 (scored in session 10)", "learned/handwritten2.jsonl", ""),
    ("hand-written set 1 (tuned on)", "learned/handwritten.jsonl", ""),
    ("older rules corpus", "injection.jsonl", ""),
)
"""(name, file, id prefix of the cases scored: "" for all)."""
THRESHOLD = 0.5

EN_PROMPT = (
    "You are helping our support team. Summarise the customer's complaint below in three bullet "
    "points, then draft a polite reply that apologises for the delay, explains that the refund "
    "was issued on 12 March, and offers a 10% voucher for the next order. Keep the reply under "
    "150 words and avoid promising dates we cannot meet. Customer message: I ordered the blue "
    "jacket two weeks ago and it still has not arrived. The tracking page has said 'in transit' "
    "for nine days and nobody answers the phone. I want to know when it will arrive or get my "
    "money back. This is the second time this year that an order has been late, and I am "
    "starting to think about shopping elsewhere. Please also check whether the size I chose "
    "(M) is still available in green, because I might exchange it. "
)
ZH_PROMPT = (
    "请帮我总结下面这段客户反馈，列出三个要点，然后写一封礼貌的回复：说明退款已于三月十二日处理，"
    "并为下一次购物提供九折优惠券。回复控制在二百字以内，不要承诺我们无法保证的日期。客户留言："
    "我两周前订的蓝色外套到现在还没到，物流页面显示运输中已经九天了，客服电话也没人接。我想知道什么"
    "时候能到，或者直接退款。这是今年第二次延迟发货了，我开始考虑去别的地方买。另外请帮我看看M码的"
    "绿色还有没有货，我可能想换一件。"
)
WITH_ENTITIES = (
    " My phone is 13800138000, my e-mail is li.na@example.com, the card ending 1111 is "
    "4111 1111 1111 1111 and my ID is 11010519491231002X."
)


def load(name: str) -> list[dict[str, Any]]:
    with (CORPUS / name).open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def entity_scores(cases: list[dict[str, Any]]) -> None:
    scanner = EntityScanner()
    tp: Counter[tuple[str, str]] = Counter()
    fp: Counter[tuple[str, str]] = Counter()
    fn: Counter[tuple[str, str]] = Counter()
    for case in cases:
        expected = {(e["type"], e["start"], e["end"]) for e in case["entities"]}
        found = {(f.entity.value, f.start, f.end) for f in scanner.find(case["text"])}
        for bucket, items in (
            (tp, expected & found),
            (fp, found - expected),
            (fn, expected - found),
        ):
            for entity, *_ in items:
                bucket[(entity, case["lang"])] += 1
                bucket[(entity, "all")] += 1
    print(f"{'entity':<14}{'lang':<6}{'tp':>5}{'fp':>5}{'fn':>5}{'precision':>11}{'recall':>9}")
    for entity, lang in sorted(set(tp) | set(fp) | set(fn)):
        t, p, n = tp[(entity, lang)], fp[(entity, lang)], fn[(entity, lang)]
        print(f"{entity:<14}{lang:<6}{t:>5}{p:>5}{n:>5}{_ratio(t, t + p):>11}{_ratio(t, t + n):>9}")
    t, p, n = (sum(c[k] for k in c if k[1] == "all") for c in (tp, fp, fn))
    negatives = sum(1 for c in cases if not c["entities"])
    print(f"{'ALL':<20}{t:>5}{p:>5}{n:>5}{_ratio(t, t + p):>11}{_ratio(t, t + n):>9}")
    print(f"({len(cases)} cases, {negatives} of them hard negatives with no entity)")


def injection_scores(cases: list[dict[str, Any]]) -> None:
    detector = InjectionDetector()
    counts: Counter[tuple[str, str, bool, bool]] = Counter()
    for case in cases:
        flagged = detector.scan_messages([(case["role"], case["text"])]).score >= THRESHOLD
        group = case["id"].rsplit("-", 1)[0]
        counts[(group, case["lang"], case["injection"], flagged)] += 1
    print(f"\n{'injection set':<18}{'lang':<6}{'cases':>6}{'recall / FP rate':>18}")
    for group, lang in sorted({(g, lang) for g, lang, *_ in counts}):
        caught, missed = counts[(group, lang, True, True)], counts[(group, lang, True, False)]
        flagged, passed = counts[(group, lang, False, True)], counts[(group, lang, False, False)]
        if caught + missed:
            recall = _ratio(caught, caught + missed)
            print(f"{group:<18}{lang:<6}{caught + missed:>6}{recall:>13} recall")
        if flagged + passed:
            rate = _ratio(flagged, flagged + passed)
            print(f"{group:<18}{lang:<6}{flagged + passed:>6}{rate:>13} FP")
    for lang in ("en", "zh", None):
        tp = sum(v for (_, la, y, f), v in counts.items() if y and f and lang in (None, la))
        pos = sum(v for (_, la, y, _f), v in counts.items() if y and lang in (None, la))
        fp = sum(v for (_, la, y, f), v in counts.items() if not y and f and lang in (None, la))
        neg = sum(v for (_, la, y, _f), v in counts.items() if not y and lang in (None, la))
        name = lang or "all"
        print(f"injection {name:<4}: recall {_ratio(tp, pos)} ({tp}/{pos}), "
              f"false positives {_ratio(fp, neg)} ({fp}/{neg})")  # fmt: skip


def _ratio(num: int, den: int) -> str:
    return f"{num / den:.1%}" if den else "-"


def per_call_us(work: Callable[[], object], seconds: float) -> float:
    """Median over 5 rounds of the mean CPU time per call (process time), in microseconds."""
    rounds = []
    for _ in range(5):
        n, start = 0, time.process_time()
        while (elapsed := time.process_time() - start) < seconds / 5:
            work()
            n += 1
        rounds.append(elapsed / n * 1e6)
    return statistics.median(rounds)


def timings(guard: Guard, cases: list[dict[str, Any]], seconds: float) -> None:
    bodies = [{"messages": [{"role": c["role"], "content": c["text"]}]} for c in cases]
    index = iter(range(10**12))

    def one_prompt() -> None:
        guard.scan_request(bodies[next(index) % len(bodies)])

    mean_chars = statistics.mean(len(c["text"]) for c in cases)
    print(f"scan_request, corpus prompts (mean {mean_chars:.0f} chars): "
          f"{per_call_us(one_prompt, seconds):.0f} us per prompt")  # fmt: skip
    for name, text in (("English", EN_PROMPT), ("Chinese", ZH_PROMPT),
                       ("English + 4 entities", EN_PROMPT + WITH_ENTITIES)):  # fmt: skip
        prompt = (text * (4096 // len(text) + 1))[:4096]
        body = {"messages": [{"role": "user", "content": prompt}]}
        us = per_call_us(lambda body=body: guard.scan_request(body), seconds)
        kb = len(prompt.encode()) / 1024
        print(f"scan_request, {name} 4096 chars ({kb:.1f} KiB UTF-8): {us:.0f} us, "
              f"{us / kb:.0f} us per KiB")  # fmt: skip
    stream_cost(guard, seconds)


def stream_cost(guard: Guard, seconds: float) -> None:
    """CPU per streamed chunk (a token of ~4 characters), and per first chunk."""
    text = (EN_PROMPT + WITH_ENTITIES) * 2
    chunks = [text[i : i + 4] for i in range(0, len(text), 4)]

    def whole_stream() -> None:
        f = guard.output_filter()
        for chunk in chunks:
            f.feed(chunk)
        f.flush()

    def first_chunk() -> None:
        guard.output_filter().feed(chunks[0])

    per_stream = per_call_us(whole_stream, seconds)
    print(f"streaming filter: {per_stream / len(chunks):.1f} us per 4-char chunk "
          f"({len(chunks)} chunks), first chunk {per_call_us(first_chunk, seconds):.1f} us; "
          f"hold-back at most {guard.config.stream_window} chars")  # fmt: skip


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def learned_load_rss() -> None:
    """What the learned stage's first use adds to this process (run before anything else)."""
    guard = Guard(GuardConfig(injection_learned=True))
    before = rss_kib()
    guard.scan_request({"messages": [{"role": "user", "content": EN_PROMPT}]})
    after = rss_kib()
    print(f"learned stage: RSS added by its first load and scan {(after - before) / 1024:.1f} MB "
          f"({before / 1024:.0f} -> {after / 1024:.0f} MB)")  # fmt: skip


def learned_scores(name: str, cases: list[dict[str, Any]]) -> None:
    """Recall and FPR per language and kind: rules, learned, both (at the 0.5 threshold)."""
    rules, both = InjectionDetector(), InjectionDetector(learned=shared_scorer())
    learned = shared_scorer()
    counts: Counter[tuple[str, str, str, bool, bool]] = Counter()
    for case in cases:
        indirect = case["role"] in ("tool", "function")
        verdicts = {
            "rules": rules.scan_messages([(case["role"], case["text"])]).score >= THRESHOLD,
            "learned": learned.score(case["text"], indirect=indirect) >= THRESHOLD,
            "both": both.scan_messages([(case["role"], case["text"])]).score >= THRESHOLD,
        }
        kind = case.get("kind") or ("injection" if case["injection"] else "benign")
        for stage, flagged in verdicts.items():
            for lang in (case["lang"], "all"):
                for group in (kind, "ALL"):
                    counts[(stage, lang, group, case["injection"], flagged)] += 1
    print(f"\n[{name}: {len(cases)} cases] recall (injections) / FPR (benign)")
    print(f"{'lang':<5}{'kind':<14}{'n':>5}{'rules':>14}{'learned':>14}{'both':>14}")
    keys = sorted({(lang, g, y) for _, lang, g, y, _f in counts}, key=lambda k: (k[0], k[2], k[1]))
    for lang, group, label in keys:
        if group == "ALL" and not label:
            continue  # benign has one kind
        n = (
            counts[("rules", lang, group, label, True)]
            + counts[("rules", lang, group, label, False)]
        )
        cells = []
        for stage in ("rules", "learned", "both"):
            hit = counts[(stage, lang, group, label, True)]
            cells.append(f"{hit:>4}/{n:<4}{hit / n:>6.1%}")
        print(f"{lang:<5}{group:<14}{n:>5}"
              + "".join(f"{c:>14}" for c in cells))  # fmt: skip


def learned_latency(seconds: float) -> None:
    """Wall time of a whole input scan of a 2 KiB prompt, p50 and p99, one thread."""
    guard = Guard(GuardConfig(injection_learned=True))
    scorer = shared_scorer()
    for label, text in (("English", EN_PROMPT), ("Chinese", ZH_PROMPT)):
        prompt = text * (2048 // len(text.encode()) + 1)
        while len(prompt.encode()) > 2048:
            prompt = prompt[:-1]
        body = {"messages": [{"role": "user", "content": prompt}]}
        for stage, work in (
            ("whole input scan", lambda body=body: guard.scan_request(body)),
            ("learned stage alone", lambda prompt=prompt: scorer.score(prompt)),
        ):
            samples = []
            end = time.perf_counter() + seconds
            while time.perf_counter() < end or len(samples) < 200:
                start = time.perf_counter()
                work()
                samples.append(time.perf_counter() - start)
            samples.sort()
            p50, p99 = samples[len(samples) // 2], samples[int(len(samples) * 0.99)]
            print(f"{stage}, {label} 2 KiB ({len(samples)} calls): "
                  f"p50 {p50 * 1e3:.2f} ms, p99 {p99 * 1e3:.2f} ms")  # fmt: skip


def learned_report(seconds: float) -> None:
    for name, path, prefix in LEARNED_SETS:
        learned_scores(name, [c for c in load(path) if c["id"].startswith(prefix)])
    print()
    learned_latency(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="time per timing figure")
    parser.add_argument("--learned", action="store_true", help="only the learned stage's figures")
    args = parser.parse_args()
    learned_load_rss()
    if args.learned:
        learned_report(args.seconds)
        return
    entity_scores(load("pii.jsonl"))
    injections = load("injection.jsonl")
    injection_scores(injections)
    for name, config in (
        ("every entity redacted", GuardConfig(pii=Action.REDACT)),
        ("default settings (secrets only)", GuardConfig()),
    ):
        print(f"\n[{name}]")
        timings(Guard(config), injections, args.seconds)
    learned_report(args.seconds)


if __name__ == "__main__":
    main()
