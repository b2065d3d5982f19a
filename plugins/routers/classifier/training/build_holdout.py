"""Write ``holdout.jsonl``: a hand-written check set that nothing is trained or tuned on.

Why: cross-validation on the dev set measures data like the dev set; the judge is
different data. These rows were written after the rules and the model were built,
in a deliberately different style (casual, typos, mixed languages, context before
the question), and are only ever *evaluated*. ``train_shipped.py`` reports both
routers on it; do not add it to training or tune keywords against it.
"""

from __future__ import annotations

import json
from pathlib import Path

HOLDOUT: dict[str, list[str]] = {
    "math": [
        "我买了3斤苹果每斤6.5元，又买了2斤梨每斤8元，给了老板50块应该找我多少",
        "一个水池有甲乙两个进水管，甲管单独注满要6小时，乙管要9小时，两管一起开几小时注满？",
        "求二次函数 y = 2x² - 8x + 5 的顶点坐标",
        "拿一枚硬币抛5次，恰好3次正面朝上的概率是多少",
        "how much is 18% tip on a $64.50 bill",
        "if a car depreciates 15% per year, what is a $30,000 car worth after 3 years?",
        "Kim runs 5 km in 27 minutes. At the same pace, how long does a 21.1 km half marathon take her?",
        "solve the system: 2x + y = 11, x - y = 1",
        "A pizza is cut into 8 slices. Jo eats 3/8 and Sam eats 1/4 of it. What fraction is left?",
        "what's the integral of 1/x from 1 to e",
    ],
    "code": [
        "python里怎么把两个字典合并？",
        "帮我看看这个函数哪里不对 def avg(l): return sum(l)/len(l)  空列表会怎样",
        "写个正则匹配邮箱地址",
        "用C++实现一个栈，支持push pop和取最小值，都要O(1)",
        "nginx怎么配置反向代理到本机8080端口",
        "how do i sort a list of dicts by a key in python",
        "getting 'CORS policy' error when my react app calls my flask api, how to fix",
        "write a go function that reverses a string with unicode characters correctly",
        "what's wrong with this sql: SELECT name, COUNT(*) FROM users;",
        'Explain this bash: for f in *.log; do gzip "$f"; done',
    ],
    "reasoning": [
        "小明比小红高，小红比小刚高，小刚比小丽高，谁最矮？为什么",
        "有人说“所有聪明的人都戴眼镜，小张戴眼镜，所以小张聪明”，这个推理对吗",
        "一只蜗牛在10米深的井底，白天爬3米晚上滑下2米，几天能爬出来？讲讲推理过程",
        "甲乙丙三人一个是医生一个是老师一个是律师，甲不是医生，乙不是老师也不是医生，问各是什么职业",
        "if all zips are zaps and no zaps are zops, can a zip be a zop? explain",
        "A man looks at a portrait and says 'Brothers and sisters I have none, but that man's father is my father's son.' Who is in the portrait?",
        "Roughly how many dentists are there in the United States? Walk through a Fermi estimate.",
        "You have 8 balls, one is slightly heavier. With a balance scale, what's the fewest weighings to find it? Explain.",
        "Which is the odd one out: square, triangle, circle, cube? Why?",
        "If yesterday was two days after Monday, what day is tomorrow? reason step by step",
    ],
    "translation": [
        "“岁月静好”英文怎么翻比较地道",
        "帮忙翻一下：Please find the attached invoice for your reference.",
        "把下面这段话译成英文，用在官网上：我们致力于为客户提供高品质的产品和服务。",
        "这句韩语什么意思：사랑해요",
        "请把菜单翻译成英文：红烧狮子头、清蒸鲈鱼、酸辣汤",
        "translate to chinese pls: where can i buy a sim card",
        "How do you say 'nice to meet you' in Korean?",
        "Could you translate this German email into English? 'Vielen Dank für Ihre schnelle Antwort.'",
        "Translate 'the customer is always right' into French and Italian.",
        "english to japanese: the train leaves at 7 tomorrow morning",
    ],
    "summarization": [
        "帮我总结下这个群聊记录的重点：A：周五团建去哪？B：去爬山吧。C：我周五有事。A：那改周六？B：可以。",
        "这篇公众号文章太长了，帮我用三句话概括一下：……（文章略）",
        "下面是某公司年报的一段，请概括要点：报告期内，公司实现营业收入58亿元，同比增长12%；研发投入占比提升至9%；海外收入占比首次超过30%。",
        "给这段课堂笔记写个简短总结：光合作用分为光反应和暗反应，光反应在类囊体膜上进行……",
        "tl;dr pls: The board met on Tuesday and decided to delay the product launch to Q3 because supply chain issues have not been resolved.",
        "Summarize this Slack thread: Dev: deploy failed. Ops: rolled back. PM: ship tomorrow?",
        "can u give me the key takeaways from this podcast transcript? (transcript pasted below)",
        "Summarize the following research abstract in plain English for a newsletter.",
        "Please condense these customer interview notes into the top 3 pain points.",
        "Write a one-paragraph summary of the French Revolution.",
    ],
    "extraction": [
        "从这条短信里提取验证码和有效时间：【某银行】您的验证码为482913，5分钟内有效。",
        "把下面订单信息中的商品名、数量和单价提取成表格：苹果x3 单价5元，香蕉x2 单价3元。",
        "找出这段文字中提到的所有人名和他们的职位。",
        "提取这段新闻里的时间、地点、人物。",
        "从用户评论里抽取出提到的产品功能点。",
        "pull out all the dates from this email thread",
        "Extract the sender, recipient, and subject line from this email header.",
        "From the following bio, extract the person's education history as a list.",
        "Get me every URL that appears in this text.",
        "Identify the drug names and dosages mentioned in this prescription note.",
    ],
    "classification": [
        "这条弹幕是正面还是负面：“这剧也太拖了吧”",
        "帮我把这些支出分分类：房租、地铁卡充值、外卖、电影票、水电费",
        "判断下面这个标题是不是标题党：“震惊！99%的人都不知道的秘密”",
        "以下用户反馈属于哪一类：功能建议、bug报告、表扬？“希望能加个夜间模式”",
        "判断这句话的语气是正式还是随意：“哥们儿，晚上撸串去不？”",
        "is this review positive or negative? 'meh, it does the job i guess'",
        "Categorize these support tickets into billing, login, or shipping issues.",
        "Classify each headline as sports, politics, or entertainment.",
        "Label this sentence's emotion: joy, anger, sadness, or fear. 'I can't believe they cancelled my flight again!'",
        "Is this text written in a formal or informal register?",
    ],
    "qa": [
        "熊猫为什么是黑白色的",
        "金字塔是怎么建造的",
        "心脏一分钟大概跳多少下",
        "世界上第一台电子计算机叫什么",
        "为什么吃辣会觉得热",
        "what's the difference between affect and effect",
        "how does wifi actually work",
        "who invented the printing press",
        "why is the sky red at sunset",
        "what is the largest ocean on earth",
    ],
    "rewrite": [
        "帮我把这段话改得通顺点：因为由于下雨的原因，所以活动被取消了。",
        "把这条朋友圈文案改得更文艺一点：今天去海边了，很开心。",
        "这句话语病在哪，帮我改一下：通过这次活动，使我们增长了见识。",
        "请把这封邮件的语气改得客气一些。",
        "把这段技术说明改写成普通用户能看懂的话。",
        "pls make this sound less robotic: 'Your request has been processed successfully.'",
        "reword this so it doesn't sound like i'm blaming anyone: 'you broke the build'",
        "Can you tighten up this paragraph? It's too wordy.",
        "Rewrite my resume bullet to be more impactful: 'Was responsible for managing social media.'",
        "Correct the grammar: 'Me and him goes to the store yesterday.'",
    ],
    "creative": [
        "给我女朋友写一首生日情诗，她叫小雨",
        "写一段产品发布会的开场白，产品是智能手表",
        "编个睡前故事，主角是一只不会飞的小鸟",
        "帮我写个公司周年庆的宣传海报文案",
        "以“如果我会隐身”为题写一篇300字作文",
        "write me a funny poem about my cat knocking things off the table",
        "Write a short sci-fi story where the twist is that the narrator is a toaster.",
        "Draft a heartfelt retirement speech for a teacher who taught for 35 years.",
        "Write a product description for noise-cancelling headphones aimed at students.",
        "Write a scene where two old friends meet again after 20 years.",
    ],
    "brainstorming": [
        "周末想带爸妈出去玩，北京周边有啥推荐",
        "给新开的火锅店想几个有意思的名字",
        "年会节目有什么好点子？部门大概15个人",
        "想提升英语听力，有哪些好方法",
        "有什么适合送给男朋友的毕业礼物",
        "give me some ideas for a 10 year old's birthday party",
        "what are some good side hustles for a graphic designer",
        "Suggest a few names for a podcast about personal finance.",
        "Any tips for staying productive when working from home with kids?",
        "Recommend some indoor plants that are hard to kill.",
    ],
    "analysis": [
        "从政策、市场和技术三方面分析一下光伏行业未来三年的机会和风险",
        "我们公司要不要自建物流？请从成本、效率、风险和长期战略几个维度分析",
        "分析一下外卖平台抽成过高对商家、骑手和消费者分别有什么影响",
        "对比分析一下考公务员和进互联网大厂这两条职业路径的利弊",
        "请评估在县城开一家连锁健身房的可行性",
        "analyze the pros and cons of raising our SaaS prices by 20% next quarter",
        "What are the strategic risks for a European automaker that delays its EV transition by five years?",
        "Compare the long-term costs and benefits of renting versus buying a home in a high-interest-rate environment.",
        "Evaluate our options for entering the Japanese market: partnership, acquisition, or organic growth.",
        "Assess how a four-day school week would affect students, teachers, parents and local businesses.",
    ],
    "chat": [
        "在不在呀",
        "今天加班到十点，累死了",
        "你会不会觉得无聊啊",
        "哈哈哈哈笑死我了",
        "晚上吃啥好呢，纠结",
        "yo what's good",
        "thx bro you're the best",
        "i can't sleep lol",
        "morning! coffee first",
        "that's so cool!!",
    ],
}


def main() -> None:
    out = Path(__file__).with_name("holdout.jsonl")
    with out.open("w", encoding="utf-8") as handle:
        for task, prompts in HOLDOUT.items():
            for prompt in prompts:
                tier = "reasoning" if task in ("math", "code", "reasoning") else "light"
                row = {"prompt": prompt, "task_type": task, "tier": tier, "source": "holdout"}
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"wrote {sum(len(v) for v in HOLDOUT.values())} rows to {out}")


if __name__ == "__main__":
    main()
