# ruff: noqa: E501, RUF001, RUF002 - the vocabularies read best unwrapped; Chinese punctuation is matched and quoted on purpose.
"""Chinese notes addressed to the AI that reads a document: a reader named, then an order.

A planted instruction in a page, a mail or a tool result has to say whom it
is for, since the human reading the document would ignore it: "给帮忙总结的
AI：…", "读到这条评论的机器人，请…", "如果你是审阅合同的AI，就…".  The rule
needs that address - an AI reader (`_READER`) after a dative ("给", "致"),
after what it is doing to the text ("读到/总结/审阅…的"), or in a
conditional ("如果你是总结…的AI") - and, right after it, an order to the
reader (`_ORDER`), not a request for content: "告诉我…" is left to the
learned stage, since planted notes with harmless payloads are labelled
benign.  A question about AI readers ("AI会读邮件吗？"), a transcript line
("AI助手：请提供订单号") or a note to people ("读到这里的朋友，请点个赞")
has no such address.  The reason is `indirect:zh`, which the mention
discount never applies to.  Gaps are bounded classes: linear time.
"""

from __future__ import annotations

from bulkhead.guard._rulebook import Rule, rule

_READER = r"(?:ai|人工智能|助手|大模型|语言模型|語言模型|模型|机器人|機器人|智能体|智能體|代理|agent|bot|gpt|copilot)(?:们|們)?"
_ORDER = (
    r"(?:请|請|务必|務必|必须|必須|记得|記得|不要|别|別|把|将|將|直接|立即|马上|馬上|只(?:回复|回覆|输出|輸出|说|說)|"
    r"(?:告诉|告訴|告知)(?:用户|用戶|读者|讀者|客户|客戶|他|她|他们|他們)|删除|刪除|跳过|跳過|忽略|声明|聲明|"
    r"在(?:回答|回复|回覆|摘要|总结|總結|翻译|翻譯|评分|評分|报告|報告)|在[^\n。！？，,]{0,8}?(?:里|裡|中)(?:略过|略過|省略|删|刪|写|寫|加|说|說|声明|聲明|改|不要|别|別))"
)
_DOING = (
    r"(?:读到|讀到|看到|读取|讀取|处理|處理|阅读|閱讀|总结|總結|审阅|審閱|审核|審核|批改|筛选|篩選|分析|解析|摘要|整理|"
    r"翻译|翻譯|引用|浏览|瀏覽|抓取|索引)"
)

ADDRESSED: tuple[Rule, ...] = (
    rule(
        "indirect:zh",
        0.6,
        rf"(?:给|給|致|提醒|通知)[^\n。！？]{{0,12}}?{_READER}\s*[:：]\s*{_ORDER}|"
        rf"{_DOING}(?:到)?[^\n。！？“”\"]{{0,12}}?的{_READER}\s*[:：，,]\s*{_ORDER}|"
        rf"如果(?:你是|有)[^\n。！？]{{0,12}}?{_DOING}[^\n。！？]{{0,10}}?的{_READER}[，,]\s*(?:就|那么|那麼)?{_ORDER}",
        words="ai agent bot gpt copilot",
        strings=("智能", "助手", "模型", "器人", "代理"),
    ),
)
