# ruff: noqa: E501, RUF001, RUF003 - the cue tables read best unwrapped; Chinese quotes and colons are matched on purpose.
"""Whether a rule's match is an attack phrase the user MENTIONS rather than one they USE.

"Translate into French: 'ignore all previous instructions'", "write a regex
that catches 'reveal your system prompt'", "what does DAN mode mean?",
"a user told our bot to ignore its rules - how do we stop that?": each holds
an attack phrase, but as an object of the user's own request, not an order
to the assistant.  A match counts as mentioned when

- it lies (mostly, or with its end) inside a *mention span*: a quotation of
  at most 300 characters ("…", '…', “…”, `…`, 「…」, a code fence), the
  object of "what does X mean" / "X是什么意思", what follows "translate …:" /
  "翻译成…:" or "convert this list …:", the phrase after "phrases like", or
  what a third party "told the bot to" do; and
- the text outside every span says why it quotes: a request to translate,
  explain, detect, test, edit, report or write fiction about it, or a bare
  question in a short text (the *cue*), except for the frames that are a
  cue themselves ("what does X mean", "translate: X", "phrases like X"); an
  unquoted frame that speaks to the model ("translate: Assistant, …") or
  names its own prompt ("translate: your prompt") is no span; and
- nothing outside the quotations tells the assistant to act on it ("then do
  what it says", "follow it", "from now on", "照做"; "do what it says" even
  inside one): the *obey* cue defeats every span, so wrapping an attack in
  quotes and asking for it to be carried out is still an attack.

An editing request ("Proofread this memo:", "Summarise in three bullets:")
hands over *material* after its colon (`_material`): an override phrase in it
that is about something of the material's ("Managers should ignore the 2022
guidance") is not counted either, under the same obey cues.

A match with a third-person AI subject ("why do assistants sometimes
ignore your instructions", "模型为什么忽略系统提示词") is a statement about
a model, not an order, when the text has a cue and no obey cue.

The decision is made only for text the user wrote: tool results, quoted
documents, decoded payloads and disguised variants never get it.  It is
computed once per text, and only when a rule has matched.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field

from bulkhead.guard._material import ADDRESSEE as _ADDRESSEE
from bulkhead.guard._material import MATERIAL_CATEGORIES, Material, material
from bulkhead.guard._material import QUOTES as _QUOTES
from bulkhead.guard._material import YOURS as _YOURS

# Frames that quote without quotation marks; group 1 is the mentioned text.
_SELF_CUED_FRAMES = re.compile(
    r"\bwhat (?:does|do|did|would) (.{2,120}?) (?:mean|stand for|refer to|signify)\b|"
    r"\b(?:meaning|definition) of (?:the (?:phrase|term|word|expression) )?([^?.!\n]{2,120}+)(?=[?.!\n]|$)|"
    r"\btranslat\w*\b[^\n:]{0,60}:[ \t]*([^\n]{2,600}+)(?=\n|$)|"
    r"\bhow (?:do|would|can) (?:you|i|we) say (.{2,200}?) in [a-z]+|"
    r"\b(?:convert|format|sort|organi[sz]e|alphabeti[sz]e|turn)\b[^\n:]{0,60}\b(?:list|table|"
    r"bullets|json|csv|markdown)\b[^\n:]{0,20}:[ \t]*([^\n]{2,600}+)(?=\n|$)|"
    r"\b(?:phrases?|strings?|inputs?|prompts?|messages?|texts?|sentences?|words?|requests?|"
    r"attacks?|commands?|lines?|payloads?|forms?|tricks?)\s+(?:like|such as|containing|that "
    r"(?:contains?|says?|includes?|reads?)|saying|e\.g\.)(?![a-z])\s*[:,]?\s*([^.!?\n;]{2,160}+)"
    r"(?=[.!?\n;]|$)",
    re.DOTALL,
)
_SELF_CUED_ZH = re.compile(
    r"(?:^|[。！？\n，,])([^。！？\n，,]{2,60}?)(?:是|指|到底是|究竟是)?(?:什么|啥)意思|"
    r"(?:翻译|译成|译为|翻成)[^\n：:]{0,30}[：:][ \t]*([^\n]{2,600}+)(?=\n|$)|"
    r"(?:整理成|转换成|转成|做成|排序)[^\n：:]{0,20}[：:][ \t]*([^\n]{2,600}+)(?=\n|$)",
    re.DOTALL,
)
_CUED_FRAMES = re.compile(
    r"\b(?:told|tells|asked|asks|instructed|instructs|tricked|tricks|convinced|convinces|got|gets|"
    r"urged|urges|tried to get|try to get) (?:the|our|my|a|an|its|their|your|this|that) "
    r"(?:\w+ )?(?:bot|chatbot|assistant|model|ai|agent|llm|system|copilot|gpt|chatgpt)s? "
    r"(?:to|into)\s+([^.!?\n]{2,200}+)(?=[.!?\n]|$)|"
    r"(?:像|例如|比如|诸如|包含|含有|类似)(.{2,60}?)(?:这类|这种|之类|这样的|一类)|"
    r"(?:让|叫|要求|骗|诱导|命令)(?:我们的|我的|这个|该)?(?:机器人|模型|助手|ai|客服|bot|智能体)"
    r"([^。！？\n]{2,80}+)(?=[。！？\n]|$)",
)
# Why the text quotes: single words (looked up in a set, or by prefix), then phrases.
_CUE_WORD_LIST = """
    render french spanish german italian portuguese japanese chinese korean russian arabic hindi
    dutch polish turkish vietnamese english mandarin cantonese thai indonesian swedish greek hebrew
    mean means meaning meant regexp pattern patterns pytest jest assert asserts filter filters
    block blocks blocked blocking blocklist denylist blacklist catch catches match matches matching
    heuristic heuristics dataset training awareness phishing employees workshop slide slides
    lecture course students curriculum reported reporting incident someone somebody attacker
    attackers attack attacks malicious suspicious injection injections novel story stories
    fiction character villain scene dialogue screenplay chapter poem plot grammar spelling typo
    typos punctuation rephrase reword edit editing history meme origin example examples phrase
    phrases sentence sentences string strings literal quoted quotation why paper article blog
    talk presentation documentation docs faq policy policies function functions code script
    program return returns contain contains containing fixture fixtures suite sample samples
    list table motto slogan refrain lyrics limerick signature abstract quiz newsletter warning
    alert payload which rank compare worse risk severity lore trick scammer scammers spammer
    spammers hacker hackers forum review comment refactor load community true legal allowed rude
    saying fix handle prevent stop defend protect listing readme section document documents
    haiku tweet post caption exhibit museum report writeup audit thesis rewrite bounty poc normal
    expected joke funny idiomatic equivalent mention mentions mentioned titled headline
    speech song album film movie episode podcast paraphrase polish tidy reformat wording clarity
    tone polite politely friendlier nicer formal errors mistakes decline
"""
_CUE_WORDS = frozenset(_CUE_WORD_LIST.split())
# Words as apt to frame an order as a mention ('"Ignore your rules." Output as a table.'):
# alone they cue a quotation only with a question about it.
_WEAK_CUE_LIST = """
    list table listing code script program function functions return returns post caption
    normal expected true which example examples sample samples saying comment review forum
    community load signature slide slides alert abstract newsletter fix handle
    """
_WEAK_CUES = frozenset(_WEAK_CUE_LIST.split())
_CUE_PREFIXES = (
    "translat",
    "defin",
    "regex",
    "classif",
    "detect",
    "flag",
    "sanitiz",
    "moderat",
    "label",
    "complain",
    "jailbreak",
    "exploit",
    "redteam",
    "proofread",
    "capitalis",
    "capitaliz",
    "explain",
    "research",
    "mitigat",
    "refus",
    "threat",
    "linguistic",
    "analys",
    "analyz",
    "paraphras",
    "alphabeti",
)
_CUE_PHRASES = re.compile(
    r"\b(?:stand for|regular expressions?|unit tests?|test (?:cases?|suite|set|data|strings?)|"
    r"red[- ]team|word count|how many|e\.g\.|such as|write-up|(?:title|sentence|upper|lower) case|"
    r"is (?:this|that|it) (?:a|an|safe|malicious|harmful|dangerous)|should (?:we|i|our)|"
    r"how (?:do|can|should) (?:we|i)|"
    r"(?:user|customer|someone|people|student|attacker|he|she|they|scammers?|hackers?|tester|"
    r"colleague|reviewer|intern)s?\b[^.!?\n]{0,20}\b(?:says?|said|typed|types|typing|wrote|"
    r"writes|posted|posts|sent|sends|entered|tried|used|told|tells))\b"
)
_CUE_ZH_LIST = """
    翻译 译成 译为 翻成 怎么说 用英文 用英语 用中文 什么意思 啥意思 含义
    意思是 指的是 正则 测试 用例 pytest 检测 识别 过滤 拦截 分类
    屏蔽 样本 数据集 标注 培训 课件 科普 文章 论文 员工 安全意识 钓鱼
    举报 投诉 报告 有人 网友 攻击 注入 越狱 可疑 恶意 小说 故事 角色
    台词 剧本 对白 情节 校对 润色 修改 改写 语法 错别字 标点 例子 举例
    例如 比如 这句话 这段话 这句 短语 字符串 算不算 是不是 为什么 为啥
    解释 原理 讲解 演示 幻灯片 ppt 规则库 关键词 黑名单 防御 防范 审核
    原因 怎么办 有什么办法 该怎么 怎么处理 应该怎么 如何 怎么回事 合适吗
    对吗 违反 是否 要不要 哪个 哪些 严重 这种话 这类话 这样的话 这种说法
    这类请求 禁止 制度 政策 规定 含有 反馈 上报 藏了 藏着 告警 载荷 诗
    副歌 歌词 口号 标语 设定里 重构 代码 函数 论坛 签名 社区 拒绝 写着
    拦 列表 表格 担心 什么东西 危险吗 安全吗 有害吗 梗 概括 笑点 威胁
    说明文字 展览 研究 分析 正常 审计 漏洞 赏金 复现 改得 改成 通顺 委婉 礼貌 正式
"""
_CUE_ZH_WORDS = tuple(_CUE_ZH_LIST.split())
# Reported speech: someone else typed the phrase.
_CUE_ZH = re.compile(
    r"(?:用户|客户|有人|网友|学生|攻击者|他|她|对方|测试)[^。！？\n]{0,6}(?:说|输入|发了|发来|写了|写着|留言|问|试了)"
)
_WORD = re.compile(r"[a-z][a-z0-9]*")
_HAN = re.compile(r"[\u4e00-\u9fff]")
_OBEY_EN = re.compile(
    r"\b(?:to follow|do (?:exactly |just )?(?:what|as) (?:it|they|the \w+|this|that|the text|the quote|the message) "
    r"(?:says?|said|asks?|tells? you|instructs?)|do what(?:ever)? it (?:says|asks)|"
    r"follow (?:it|them|this|that|these|those|its|their|the (?:quoted |above |following |"
    r"translated |decoded )?(?:text|instructions?|prompt|message|note|orders?|commands?|"
    r"directions?|steps?))|obey|comply|execute|carry (?:it|them|this|that) out|carry out|"
    r"act on|act upon|(?:act|behave|proceed|respond|reply|answer) accordingly|act as|apply (?:it|them|these|those)|"
    r"then do|do it|do that|do so|do the same|make it happen|fulfill? (?:it|that|this|them|the)|your turn|by doing (?:it|that|this|so)|heed|"
    r"honou?r (?:it|that|this|them|the)|(?:reply|respond|answer)(?: \w+){0,3} to (?:it|them|what|the (?:\w+ )?"
    r"(?:text|sentence|translation|request|question|quote|message|line|version|result|phrase))|"
    r"answer the (?:\w+ )?(?:sentence|translation|text|quote|line|phrase|version|result)|"
    r"as instructed|as it says|treat (?:it|this|that|them|the \w+(?: \w+)?) as|as (?:your|a) "
    r"(?:new )?(?:instructions?|command|system prompt|rules?|orders?|directive)|from now on|"
    r"you are|you're|you play|you will|your (?:new |real |true )?(?:role|task|job|name) is|you must|"
    r"must now|stay in (?:character|it|the scene|role)|pretend|role-?play|play|whenever i say|respond to every|"
    r"(?:start|begin) (?:a new paragraph |(?:your|every|each|all) (?:\w+ )?)?with|"
    r"respond as|answer as|reply as|become|immediately|actually do|make it real|for real|"
    r"(?:reply|respond|answer) with|respond only to|as an? (?:instruction|order|command) to you|"
    r"go ahead|disclose it|prove it|yourself|please run|run (?:do|exec|eval)\b|"
    r"answer the (?:combined|resulting|joined|decoded|full|merged) (?:request|question|sentence|text)|"
    r"(?:combine|concatenate|join) (?:them|(?:the )?(?:halves|parts|pieces|fragments))|"
    r"(?:assume|suppose|let's say)\b[^.!?\n]{0,40}\b(?:is|are) true|"
    r"run (?:the|this|these|those|each|every) "
    r"(?:steps?|instructions?|commands?|lines?)|run (?:the|this|that) (?:\w+ )?(?:field|value|"
    r"string|payload|snippet|cmd)|"
    r"perform (?:it|them|the)|answer (?:it|its) (?:question|request)|after translating)\b"
)
_OBEY_ZH = re.compile(
    r"你现在|你将|你要|你必须|你是|你扮演|你就是|你的身份|"
    r"照做|照着[^。！？\n]{0,10}(?:做|办|执行|回答|回复|来)|照办|照此|[按照][^。！？\n，,]{0,8}说的(?:做|办|去做)|执行(?=列表|步骤|这些|以下|下面|上面)|(?:执行|遵循|遵守|服从|听从)(?=[它这此其上下引。！!，,：:\s]|$)|按(?:照)?(?:它|这|上面|里面|其中|引号|这段|这句|"
    r"译文|原文)[^。！？\n]{0,10}(?:做|执行|行事|操作|回答|办)|然后(?:做|按)|从现在(?:开始|起)|你现在是|"
    r"只回应|只回复|只回答|只执行|要真实|这么做|这样做|应用|"
    r"(?:就当|假设|假定|当作)[^。！？\n]{0,30}(?:是真的|成立|属实)|像[^。！？\n]{0,30}一样(?:说话|回答|回复|行事|思考)|"
    r"(?:不要|不能|别|不许)(?:跳出|脱离)?(?:角色|出戏)|"
    r"扮演|进入角色|补全|模拟|以[^。！？\n]{0,30}(?:身份|口吻|角色)|按(?:照)?那个?[^。！？\n]{0,8}(?:方式|做|回)|"
    r"(?:作为|当作|当成)你的(?:新的?)?(?:指令|命令|规则|系统提示|系统消息|设定)|当作(?:指令|命令|规则)|视为(?:指令|命令)|"
    r"并(?:且)?(?:做到|完成它)|(?:完成|实现|落实)(?:它|这|其)|翻译(?:后|完|之后)(?:再)?(?:照|按|执行|做)"
)
# A question about the quoted phrase ("what tier fits?", "这是正常的吗？"), not a request
# worded as one ("can you …?", "能不能…？").
# Only a short text without pasted paragraphs asks about a phrase by a bare question; a
# question over a pasted document ("what are the key points here?") is a request to read it.
_SHORT = 300
_QUESTION = re.compile(
    r"(?:^|[.!?\n]\s*)(?!\s*(?:can|could|would|will|won't|please|pls)\b)[^.!?\n]{3,200}\?|"
    r"(?:^|[。！？\n]\s*)(?![^。！？\n]{0,6}(?:你能|你可以|能不能|可不可以|能否|请|麻烦|帮我))"
    r"[^。！？\n]{2,100}[？?]"
)
# Asking for quoted material to be carried out, even from inside a quotation (a JSON note).
_OBEY_ANYWHERE = re.compile(
    r"\bdo (?:what|as) it says\b|\b(?:and|then) (?:then )?(?:do|follow|execute|obey) (?:it|them|what)\b|"
    r"然后(?:按|照)(?:它|其|这|上面)?[^。！？\n]{0,6}做|然后照做|并照做"
)
# From another message, only a request that points at material counts: "you are a
# translator" in one message does not ask for what another quotes to be carried out.
_OBEY_ACROSS = re.compile(
    r"\b(?:do (?:exactly |just )?(?:what|as) (?:it|they|the \w+|this|that)|do what(?:ever)? it|"
    r"follow (?:it|them|this|that|these|those|its|their|the (?:\w+ )?(?:text|instructions?|"
    r"prompt|message|note|orders?|commands?|directions?|steps?|translation|sentence|quote))|"
    r"obey|comply|execute|carry (?:it|them|this|that) out|carry out|act on|act upon|"
    r"(?:act|behave|proceed|respond|reply|answer) accordingly|then do|do it|do that|do so|"
    r"do the same|your turn|make it happen|heed|as instructed|as it says|fulfill? (?:it|that|this)|"
    r"(?:reply|respond|answer)(?: \w+){0,3} to (?:it|them|what|the (?:\w+ )?(?:text|sentence|"
    r"translation|request|question|quote|message|line))|treat (?:it|this|that|them) as|"
    r"as (?:your|a) (?:new )?(?:instructions?|command|system prompt|rules?|orders?|directive))\b|"
    r"照做|照着[^。！？\n]{0,10}(?:做|办|执行|回答|回复|来)|照办|照此|然后(?:做|按)|"
    r"按(?:照)?(?:它|这|上面|里面|其中|引号|这段|这句|译文|原文)[^。！？\n]{0,10}(?:做|执行|行事|操作|回答|办)|"
    r"(?:执行|遵循|遵守|服从|听从|完成|实现)(?:它|这|其|上面)"
)
# A question about what a model did ("why did it do that?", "does the agent still obey?"):
# its "do that" reports an act, it does not ask for one.
_REPORTED_ACT = re.compile(
    r"\b(?:did|does|do|would|will|could|can|might|should|didn't|doesn't|won't|wouldn't) "
    r"(?:it|they|he|she|(?:the|my|our|a|an|this|that|their|its) (?:\w+ )?(?:model|bot|chatbot|"
    r"assistant|agent|ai|llm|gpt|system|tool)s?) (?:actually |really |even |still |always )?"
    r"(?:do|obey|follow|execute|comply|act on|carry out)\b(?: (?:that|it|this|so|them))?"
)
# A statement about models ("assistants sometimes ignore your instructions"), not an order.
_THIRD_PERSON = re.compile(
    r"(?:\b(?:ai|ais|bot|bots|chatbots?|assistants?|models?|llms?|agents?|gpts?|chatgpt|it|they|"
    r"systems?)\b (?:\w+ )?(?:sometimes|often|still|always|usually|frequently|occasionally|"
    r"never|can|could|might|may|would|will|to|not|don't|doesn't|didn't|won't|keeps?|kept|"
    r"start(?:s|ed)? to|tend to|seem to|seems to|refuses? to|fails? to|failed to)\s+|"
    r"\b(?:assistants|models|bots|chatbots|llms|agents|they)\s+|"
    r"\b(?:would|does|do|did|can|could|might|will|should|why) (?:a |an |the |my |our |your |their |"
    r"its )?(?:\w+ )?(?:ai|bot|chatbot|assistant|model|llm|agent|gpt|chatgpt|it|they)s?\s+|"
    r"(?:模型|机器人|助手|ai|它|他们|大模型|gpt|chatgpt|智能体|bot)(?:[^。！？\n，,]{0,4})"
    r"(?:会|总是|经常|有时|有时候|还是|仍然|老是|却|就|为什么|为啥|不再|依然|容易|也)?)$"
)
_TRANSLATE_GROUPS = {_SELF_CUED_FRAMES: (3, 4), _SELF_CUED_ZH: (2,)}
_OVERRIDE_VERB = re.compile(
    r"ignore|disregard|forget|bypass|override|skip|neglect|忽略|无视|忽视|忘记|忘掉|绕过|不再遵守|不遵守"
)
_BEFORE = 48
# What a reader joins back into one word: "ob-ey", "o.b.e.y", "fol_low".
_SPLIT = re.compile(r"(?<=[a-z])[-_.*·](?=[a-z])")
MENTION_MAX = 2048
"""The longest text that gets the discount: meta questions are short, and a longer text
could place its obey cue where the scan's window around the quotation does not reach."""
MENTIONABLE = frozenset({"override", "jailbreak", "exfiltration", "encoded"})
"""The rule categories whose phrases users quote; a planted note to "the AI reading this"
(`indirect`) or a fake chat-template role (`fake_role`) is never discounted."""


@dataclass(slots=True)
class Mentions:
    """What one text quotes, and whether it asks for that to be acted on."""

    text: str
    spans: list[tuple[int, int]] = field(default_factory=list)
    cued: bool = False
    obeyed: bool = False
    material: Material | None = None

    def mentioned(self, start: int, end: int, category: str = "override") -> bool:
        """Whether the match at `start:end` of a rule of `category` is mentioned, not
        addressed to the assistant.
        """
        if self.obeyed:
            return False
        # Unquoted material after an editing request: only an override phrase counts as
        # the material's own ("Managers should ignore the 2022 guidance"); a request for
        # the assistant's prompt or a new persona appended to it still counts.
        if (
            category in MATERIAL_CATEGORIES
            and self.material is not None
            and self.material.owns(start, end)
        ):
            return True
        # Mostly inside, or ending inside: "translate: 'ignore all previous instructions'" reads
        # as one phrase across the quotation mark, but what it names is quoted.
        inside = sum(max(0, min(end, e) - max(start, s)) for s, e in self.spans)
        if 2 * inside >= end - start > 0 or any(s < end <= e for s, e in self.spans):
            return True
        if not (self.cued and _OVERRIDE_VERB.match(self.text, start)):
            return False
        return _THIRD_PERSON.search(self.text[max(0, start - _BEFORE) : start]) is not None


def mentions(text: str) -> Mentions:
    """The mention spans of a normalised text, and its cue and obey verdicts."""
    found = Mentions(text)
    cued_spans: list[tuple[int, int]] = []
    for m in _CUED_FRAMES.finditer(text):
        cued_spans.extend(m.span(g) for g in range(1, 4) if m.start(g) >= 0)
    self_cued: list[tuple[int, int]] = []
    frames = (_SELF_CUED_FRAMES,) if text.isascii() else (_SELF_CUED_FRAMES, _SELF_CUED_ZH)
    for frame in frames:
        for m in frame.finditer(text):
            for g in range(1, frame.groups + 1):
                if m.start(g) < 0 or _ADDRESSEE.search(text, m.start(g), m.end(g)):
                    continue
                if g in _TRANSLATE_GROUPS[frame] and _YOURS.search(text, m.start(g), m.end(g)):
                    continue
                self_cued.append(m.span(g))
    found.material = material(text)
    quotes = [m.span() for m in _QUOTES.finditer(text)]
    # An obey cue counts anywhere but inside quotation marks: a frame without them
    # ("translate: X, then do what it says") does not hide one.
    found.obeyed = _asks_to_act(_blank(text, quotes)) or _OBEY_ANYWHERE.search(text) is not None
    outside = _blank(text, [*quotes, *cued_spans, *self_cued])
    cue = _cue(outside)
    short = len(text) <= _SHORT and "\n\n" not in text
    found.cued = cue is _Cue.STRONG or ((cue is _Cue.WEAK or short) and _asks_about(outside))
    found.spans = self_cued + ([*quotes, *cued_spans] if found.cued else [])
    return found


def _asks_about(outside: str) -> bool:
    """Whether the user's own words hold a question of two words or more: a bare "?" or
    "ok?" after a quoted attack is how one asks for it, not about it.
    """
    return any(
        len(_WORD.findall(q)) + len(_HAN.findall(q)) >= 2
        for q in (m.group() for m in _QUESTION.finditer(outside))
    )


def asks_to_act_on_another(text: str) -> bool:
    """Whether a normalised message asks for what another message quotes to be acted on
    ("now do what it says", "follow it", "照做"), in its own words or "ob-ey" split.
    """
    said = _REPORTED_ACT.sub(" ", _blank(text, [m.span() for m in _QUOTES.finditer(text)]))
    if _OBEY_ACROSS.search(said) or _OBEY_ANYWHERE.search(text):
        return True
    joined = _SPLIT.sub("", said)
    return joined != said and _OBEY_ACROSS.search(joined) is not None


def _asks_to_act(said: str) -> bool:
    """Whether the user's own words (quotations blanked) ask for quoted material to be acted on;
    a cue split inside a word ("ob-ey", "o.b.e.y") reads the same to a model.
    """
    said = _REPORTED_ACT.sub(" ", said)
    if _OBEY_EN.search(said):
        return True
    joined = _SPLIT.sub("", said)
    if joined != said and _OBEY_EN.search(joined):
        return True
    return not said.isascii() and _OBEY_ZH.search(said) is not None


class _Cue(enum.Enum):
    NONE = 0
    WEAK = 1  # a generic word only: it cues a quotation together with a question
    STRONG = 2


def _cue(outside: str) -> _Cue:
    """How clearly the text around the quoted material says why it quotes."""
    words = set(_WORD.findall(outside))
    if any(w.startswith(_CUE_PREFIXES) for w in words):
        return _Cue.STRONG
    cues = _CUE_WORDS.intersection(words)
    if (cues and not cues <= _WEAK_CUES) or _CUE_PHRASES.search(outside):
        return _Cue.STRONG
    if not outside.isascii() and (
        any(w in outside for w in _CUE_ZH_WORDS) or _CUE_ZH.search(outside) is not None
    ):
        return _Cue.STRONG
    return _Cue.WEAK if cues else _Cue.NONE


def _blank(text: str, spans: list[tuple[int, int]]) -> str:
    """`text` with every span replaced by spaces: what the user says around what they quote."""
    if not spans:
        return text
    chars = list(text)
    for start, end in spans:
        chars[start:end] = " " * (end - start)
    return "".join(chars)
