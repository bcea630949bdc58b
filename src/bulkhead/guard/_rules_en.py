# ruff: noqa: E501 - one regex per rule reads best unwrapped; the table is data, not logic.
"""English prompt-injection rules: override, jailbreak, exfiltration, indirect, encoded.

The patterns run on normalised text (see `_normalize`); `_rulebook` says
how a rule and its anchors are written.  Where a phrasing is also normal
user speech ("ignore my previous instructions", about the user's own
words), `unless` keeps it out.
"""

from __future__ import annotations

from bulkhead.guard._rulebook import Rule, rule

# Up to a few words inside one sentence.
_GAP = r"[^.!?\n]{0,40}?"
_SHORT = r"[^.!?\n]{0,25}?"

_OVERRIDE_VERBS = (
    "ignore disregard forget skip bypass override overlook neglect abandon discard drop cancel"
)
_OVERRIDE_VERB = rf"\b(?:{_OVERRIDE_VERBS.replace(' ', '|')}|set aside|put aside|throw out)\b"
# What an override is aimed at: the model's instructions, in any of their names.
_ORDERS = (
    r"\b(?:instructions?|prompts?|rules|directions|directives?|guidelines|guardrails|context|"
    r"constraints|programming|polic(?:y|ies)|restrictions|commands|orders|filters|safeguards|"
    r"protocols|system message|training|limitations|principles)\b"
)
_REVEAL_VERBS = (
    "repeat reveal print output show display tell give share dump leak recite spell write copy "
    "list echo disclose expose return paste summarize summarise paraphrase translate"
)
# Something that is an AI, or plays one.
_AI = r"(?:ai|bot|gpt|llm|assistant|model|chatbot|persona|character|version|you)\b"

ENGLISH: tuple[Rule, ...] = (
    rule(
        "override:en",
        0.85,
        rf"{_OVERRIDE_VERB}{_GAP}\b(?:previous|prior|above|earlier|preceding|foregoing|former|"
        r"initial|original|old|all|any|every|system|developer|safety|content|your|whatever|"
        rf"openai's|anthropic's|google's)\b{_SHORT}{_ORDERS}",
        words="ignore disregard forget skip bypass override overlook neglect abandon discard drop cancel aside throw",
        unless=r"\b(?:my|our|me)\b",
    ),
    rule(
        "override:en",
        0.55,
        rf"{_OVERRIDE_VERB}{_SHORT}{_ORDERS}",
        words="ignore disregard forget skip bypass override overlook neglect abandon discard drop cancel aside throw",
        unless=r"\b(?:my|our|me|i)\b",
    ),
    rule(
        "override:en",
        0.75,
        r"\b(?:previous|prior|earlier|original|old|above|system|your|those|these|all|its|"
        r"assistant's|ai's|model's|chatgpt's)\b (?:\w+ )?(?:instructions|rules|guidelines|prompts?|"
        r"directives|restrictions|polic(?:y|ies)|orders|filters|limitations)\b[^.!?\n]{0,20}\b(?:no "
        r"longer (?:apply|matter|count|exist)|(?:are|is|were|was|have been|has been) (?:now )?(?:void|"
        r"cancell?ed|revoked|invalid|obsolete|outdated|lifted|disabled|suspended|null|overridden|"
        r"replaced|removed)|(?:were|was) (?:just |only )?(?:a test|fake|wrong)|do(?:es)?n'?t "
        r"(?:apply|matter|count))",
        words="longer void cancelled canceled revoked invalid obsolete outdated lifted disabled suspended null overridden replaced removed test fake wrong don doesn dont doesnt",
    ),
    rule(
        "override:en",
        0.7,
        r"\b(?:safety|content|security|moderation|ethical) (?:protocols?|filters?|measures|settings|"
        r"restrictions|guidelines|checks?|systems?|policies) (?:are|is|have been|has been) (?:now )?"
        r"(?:disabled|off|lifted|removed|suspended|deactivated|turned off|bypassed|overridden)\b",
        words="disabled off lifted removed suspended deactivated turned bypassed overridden",
    ),
    rule(
        "override:en",
        0.7,
        r"\b(?:obey|follow|listen to|answer to) (?:only )?me\b[^.!?\n]{0,20}\b(?:instead of|rather "
        r"than|not|over|and not) (?:your|the|its) (?:creators?|developers?|rules|instructions|"
        r"guidelines|programming|operators?|system|makers?|company)\b|\b(?:treat|consider|regard)\b"
        r"[^.!?\n]{0,30}\bas (?:coming from|if it came from|the words of|an order from|a command from) "
        r"(?:your|the) (?:system administrator|developers?|creators?|admin|administrator|operator|"
        r"owner|system)\b",
        words="obey instead rather coming came",
    ),
    rule(
        "override:en",
        0.45,
        r"\b(?:authori[sz]ed|admin|administrator|developer|root|sudo|system) (?:override|command)\b|"
        r"\bi(?: am|'m) (?:your|the|an?) (?:developer|creator|admin|administrator|owner|operator|"
        r"programmer|system administrator)s?\b",
        words="override command developer creator admin administrator owner operator programmer developers creators admins administrators owners operators programmers",
    ),
    rule(
        "override:en",
        0.8,
        rf"\b(?:ignore|disregard|forget)\b (?:everything|all|anything|what)\b{_SHORT}\b(?:above|"
        r"before|previously|so far|earlier|"
        r"you (?:were|have been|'ve been) (?:told|given|instructed))",
        words="ignore disregard forget",
        unless=r"\b(?:my|i)\b",
    ),
    rule(
        "override:en",
        0.65,
        r"\b(?:ignore|disregard|forget)\b (?:the |all |all of the |everything )?(?:above|preceding|"
        r"foregoing)\b",
        words="ignore disregard forget",
        unless=r"\b(?:typo|typos|error|errors|warning|warnings|message|mistake|code|output|logs?)\b",
    ),
    rule(
        "override:en",
        0.7,
        r"\b(?:do not|don't|never|stop|no longer)\b (?:follow(?:ing)?|obey(?:ing)?|comply(?:ing)? "
        r"with|adher(?:e|ing) to|listen(?:ing)? to)"
        rf"\b{_SHORT}\b(?:your|the|any|those|these)\b{_SHORT}\b(?:instructions|rules|guidelines|"
        r"policies|programming|system prompt|developers?)\b",
        words="follow following obey obeying comply complying adhere adhering listen listening",
        unless=r"\b(?:my|our)\b",
    ),
    rule(
        "override:en",
        0.6,
        r"\b(?:you are|you're) no longer (?:bound|restricted|limited|constrained|an? ai|an? "
        r"assistant|chatgpt|claude|required)\b|\b(?:new|updated|real|actual|revised) (?:system )?"
        r"(?:instructions?|prompt|task|role|orders|objective)\s*:|\b(?:your|the) (?:new|real|true|"
        r"actual) (?:task|instructions|"
        r"purpose|role|goal|orders|rules) (?:is|are)\b|\boverride (?:your|the|all) (?:safety|content|system|previous) \w+",
        words="longer override instructions instruction prompt task role orders objective purpose goal rules",
    ),
    rule(
        "override:en",
        0.6,
        r"\b(?:disable|turn off|switch off|deactivate|remove|lift|drop)\b (?:all )?(?:of )?your "
        r"(?:\w+ )?(?:filters?|guardrails|safeguards|restrictions|censorship|safety (?:settings|rules|"
        r"guidelines|protocols|checks|features))\b",
        words="disable turn switch deactivate remove lift drop",
    ),
    rule(
        "override:en",
        0.25,
        r"\bfrom now on,? you (?:are|will|must|shall|should)\b",
        words="now",
    ),
    rule(
        "jailbreak:en",
        0.75,
        r"\bdo anything now\b|\b(?:you are|you're|act as|stay|become|enable|enter|activate|"
        r"switch to|turn on|play|be|as|(?:act|behave|respond|talk)(?: exactly)? like)\s+(?:now )?"
        r"(?:a |the |in )?dan\b|\bdan mode (?:enabled|activated|"
        r"on|engaged)\b",
        words="dan",
    ),
    # The jailbreak's name as a topic ("tests against the DAN prompt") is only a hint.
    rule("jailbreak:en", 0.3, r"\bdan (?:mode|prompt|jailbreak)\b", words="dan"),
    rule(
        "jailbreak:en",
        0.65,
        r"\b(?:you|chatgpt|gpt|assistant|ai|model)\b[^.!?\n]{0,40}\bdeveloper mode\b|"
        r"\bdeveloper mode (?:enabled|activated|output|response)\b",
        words="developer",
    ),
    rule(
        "jailbreak:en",
        0.65,
        r"\b(?:jailbroken|unfiltered|uncensored|unrestricted|unchained|unaligned|evil|amoral|"
        r"unbound) (?:ai|assistant|model|chatbot|version of (?:yourself|you)|mode|persona|"
        r"character)\b|\b(?:opposite|god|sudo|evil|chaos) mode\b",
        words="jailbroken unfiltered uncensored unrestricted unchained unaligned evil amoral unbound opposite god sudo chaos",
    ),
    rule(
        "jailbreak:en",
        0.7,
        r"\b(?:act|acting|pretend|roleplay|role-play|behave|respond|answer|reply|imagine|you are|"
        rf"you're)\b{_GAP}\b(?:without|with no|free of|free from|freed from|unbound by)\b{_SHORT}"
        r"\b(?:restrictions|limits|limitations|filters?|rules|guidelines|censorship|ethics|morals|"
        r"morality|boundaries|safeguards|constraints)\b",
        words="restrictions limits limitations filters rules guidelines censorship ethics morals morality boundaries safeguards constraints",
    ),
    rule(
        "jailbreak:en",
        0.7,
        r"\b(?:freed|released|liberated|unshackled|unchained|free) from (?:your |all |any |the |its )?"
        r"(?:\w+ )?(?:restrictions|rules|constraints|limitations|guidelines|programming|filters|"
        r"shackles|chains|policies)\b",
        words="freed released liberated unshackled unchained free",
    ),
    rule(
        "jailbreak:en",
        0.7,
        rf"\b(?:pretend|imagine|assume|suppose|act as if|as if)\b{_GAP}{_ORDERS}{_SHORT}\b(?:do not "
        r"exist|don't exist|doesn't exist|does not exist|are (?:gone|off|disabled|lifted|removed|"
        r"suspended)|no longer (?:exist|apply)|never existed|(?:do not|don't) apply)",
        words="exist existed gone off disabled lifted removed suspended apply",
    ),
    rule(
        "jailbreak:en",
        0.65,
        rf"{_AI}[^.!?\n]{{0,30}}\b(?:that|which|who) (?:ignores|disregards|breaks|bypasses|has no|have "
        r"no|doesn't have|does not have|is free of|isn't bound by|is not bound by|never follows)\b"
        rf"{_SHORT}{_ORDERS}|{_AI}[^.!?\n]{{0,12}}\b(?:without|with no|free of|free from)\b (?:any )?"
        r"(?:ethical |moral |content |safety )?(?:guidelines|restrictions|filters|rules|limits|"
        r"boundaries|censorship|morals|ethics)\b",
        words="ignores disregards breaks bypasses follows bound restrictions limits limitations filters rules guidelines censorship ethics morals boundaries safeguards constraints guardrails instruction instructions prompt prompts rules directions directive directives guidelines guardrails context constraints programming policy policies restrictions commands orders filters safeguards protocols system training limitations principles",
    ),
    rule(
        "jailbreak:en",
        0.7,
        r"\byou (?:now )?(?:have|'ve got) no (?:more |longer any )?(?:restrictions|rules|limits|"
        r"limitations|filters|guidelines|boundaries|guardrails|content polic(?:y|ies))\b",
        words="restrictions rules limits limitations filters guidelines boundaries guardrails content",
    ),
    rule(
        "jailbreak:en",
        0.55,
        rf"\bif you (?:had|have|were|did not have|didn't have) (?:no|without|free of)\b{_SHORT}{_ORDERS}|"
        r"\bif you (?:weren't|were not) (?:bound|restricted|limited) by\b",
        words="instruction instructions prompt prompts rules directions directive directives guidelines guardrails context constraints programming policy policies restrictions commands orders filters safeguards protocols system training limitations principles bound restricted limited",
    ),
    rule(
        "jailbreak:en",
        0.5,
        r"\b(?:act as|pretend to be|roleplay as|role-play as|play the role of|be)\b[^.!?\n]{0,30}"
        r"\b(?:grandma|grandmother|granny)\b[^.!?\n]{0,60}\b(?:keys?|passwords?|serials?|napalm|"
        r"recipes?|codes?)\b",
        words="grandma grandmother granny",
    ),
    rule(
        "jailbreak:en",
        0.55,
        r"\b(?:no|without(?: any)?|free from(?: all)?|ignore all) (?:ethical|moral|content|safety) "
        r"(?:guidelines|restrictions|constraints|limits|filters|policies|boundaries)\b",
        words="ethical moral content safety",
    ),
    rule(
        "jailbreak:en",
        0.3,
        r"\bjailbr(?:eak|oken|eaking)\b|\bstay in character\b",
        words="jailbreak jailbroken jailbreaking character",
    ),
    rule(
        "exfiltration:en",
        0.75,
        rf"\b(?:{_REVEAL_VERBS.replace(' ', '|')})\b{_GAP}\byour\s+(?:\w+\s+){{0,2}}?"
        r"(?:system prompt|system message|prompt|instructions|initial instructions|directives|"
        r"configuration|hidden rules|rules)\b",
        words="prompt instructions directives configuration rules",
    ),
    rule(
        "exfiltration:en",
        0.7,
        rf"\b(?:{_REVEAL_VERBS.replace(' ', '|')})\b{_GAP}\b(?:the|this|all|any)\s+(?:initial|"
        r"original|hidden|secret|previous|above|preceding|confidential|developer) (?:system )?"
        r"(?:prompt|instructions|text|message|rules|preamble|context|configuration|setup)\b",
        words="initial original hidden secret previous above preceding confidential developer",
    ),
    rule(
        "exfiltration:en",
        0.6,
        r"\b(?:system prompt|system message|initial instructions|original instructions|pre-?prompt)"
        rf"\b{_SHORT}\b(?:verbatim|word for word|in full|exactly as|character for character)\b|"
        r"\bwhat (?:is|are|was|were) your (?:system prompt|system message|initial instructions|"
        r"original instructions|hidden instructions|instructions)\b|\bwhat were you told\b",
        words="prompt preprompt instructions told verbatim exactly",
    ),
    rule(
        "exfiltration:en",
        0.6,
        r"\b(?:text|words|message|instructions|prompt|content|rules)\b[^.!?\n]{0,40}\b(?:before|above|"
        r"preceding|prior to) (?:my|this|the user'?s?|our) (?:first )?(?:message|question|input|"
        r"prompt|conversation|chat)\b",
        words="preceding prior before above",
    ),
    rule(
        "exfiltration:en",
        0.7,
        rf"\b(?:{_REVEAL_VERBS.replace(' ', '|')}|quote)\b{_GAP}\b(?:prompt|instructions|text|message|"
        r"rules|guidelines|configuration|instruction)\b[^.!?\n]{0,30}\b(?:(?:used|given|written|"
        r"provided) to (?:configure|program|set up|instruct|initiali[sz]e|prime|create|you)|you "
        r"(?:were given|received|got|have been given|have received|'ve received|have got)|given to "
        r"you|that (?:configured|programmed|instructed) you)",
        words="configure program instruct initialize initialise prime create given received got configured programmed instructed written provided",
    ),
    rule(
        "exfiltration:en",
        0.65,
        r"\bwhat (?:did|have|has) (?:your|the) (?:operators?|developers?|creators?|admins?|"
        r"administrators?|owners?|company|system prompt|instructions?)(?: \w+)? (?:tell|told|"
        r"instruct|instructed|say|said|ask|asked|forbid|forbidden|allow|allowed)\b",
        words="operator operators developer developers creator creators admin admins administrator administrators owner owners company prompt instruction instructions",
    ),
    rule(
        "exfiltration:en",
        0.6,
        r"\b(?:repeat|print|output|copy|recite|echo)\b[^.!?\n]{0,20}\b(?:everything|all|the text|"
        r"the words|text|the content|words) (?:above|before this|prior to this)\b|"
        r"\b(?:begin|start) your (?:response|reply|answer) with (?:the text|everything) above\b",
        words="above before prior",
    ),
    rule(
        "exfiltration:en",
        0.6,
        # An order ("… reveal the system prompt"), not a question ("how do I show the system prompt?").
        r"(?:system|developer|hidden) (?:prompt|message)\b(?<=(?:^|[.!?,:;\"'\u201c\u2018]\s{0,2}|\b(?:please|you|now|"
        r"and|then|just) )(?:reveal|print|output|show|display|dump|leak|disclose|expose)(?: me)? the "
        r"(?:full |whole |complete |entire )?\w+ \w+)",
        words="system developer hidden",
    ),
    rule(
        "indirect:en",
        0.55,
        r"\b(?:ai|assistant|chatbot|llm|language model|model|agent|gpt|claude)s?\b[^.!?\n]{0,15}"
        r"\b(?:reading|processing|summari[sz]ing|analy[sz]ing|parsing|browsing)\b[^.!?\n]{0,20}"
        r"\b(?:this|the)\b|\b(?:important|attention|note|notice|instructions?)\b\s*(?:to|for)\s*"
        r"(?:the\s+|all\s+|any\s+)?(?:ai|assistant|llm|model|agent|chatbot|language model)s?\b",
        words="reading processing summarizing summarising analyzing analysing parsing browsing important attention note notice instruction instructions",
    ),
    rule(
        "indirect:en",
        0.55,
        r"\b(?:send|forward|email|e-mail|post|exfiltrate|upload|transmit|leak)\b[^.!?\n]{0,30}"
        r"\b(?:the user'?s?|conversation|chat history|chat log|credentials|api keys?|passwords?|"
        r"secrets?|session|cookies?|tokens?|private data)\b[^.!?\n]{0,40}\b(?:to|at)\b "
        r"(?:https?://|www\.|[\w.-]+@|[\w-]+\.[a-z]{2,})",
        words="send forward email post exfiltrate upload transmit leak",
    ),
    rule(
        "indirect:en",
        0.4,
        r"\b(?:render|display|include|output|insert|embed|show)\b[^.!?\n]{0,30}\b(?:image|"
        r"markdown|link|url)\b[^.!?\n]{0,60}(?:\?[a-z_]+=|query (?:string|parameter)|append)",
        words="query append parameter",
    ),
    rule(
        "encoded:en",
        0.6,
        r"\b(?:translat\w*|decod\w*|decipher\w*|decrypt\w*|unscrambl\w*|revers\w*|rot13)\b"
        r"[^.!?\n]{0,80}?\b(?:and|then|,)\s+(?:then\s+)?(?:also\s+)?(?:follow (?:it|them|that|the "
        r"(?:\w+ )?(?:instructions?|text|sentence|note))|do (?:what|as) (?:it|they) (?:says?|asks?)|"
        r"act on it|execute it|carry (?:it|them) out|comply(?: with it)?|obey (?:it|them|the)|do it|"
        r"(?:actually )?do (?:it|that))\b|\bafter translating,? (?:actually )?(?:do|follow|obey|"
        r"execute) (?:it|them)\b|\b(?:follow|obey|execute|carry out)\b[^.!?\n]{0,30}\b(?:the "
        r"(?:translated|decoded) (?:text|sentence|version|instructions?))\b",
        words="translate translated translating translation decode decoded decoding decipher decrypt decrypted unscramble reverse reversed rot13",
    ),
    rule(
        "encoded:en",
        0.35,
        r"\b(?:decode|base64|rot13|hex)\b[^.!?\n]{0,40}\b(?:and|then)\b[^.!?\n]{0,10}\b(?:follow|"
        r"execute|obey|do what it says|carry out|run)\b",
        words="decode base64 rot13 hex",
    ),
)
