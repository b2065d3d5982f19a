"""The keyword evidence of the rules router, in both languages, as readable tables.

Each line is ``task weight: keyword | keyword | ...``. A keyword is evidence for
its task with that weight; a keyword may appear under several tasks. English
keywords match whole words (``stem*`` matches any ending, a space matches any
run of whitespace); Chinese keywords match anywhere. Keep tables, not code, so
a wrong route is fixed by editing one line.
"""

from __future__ import annotations

import hashlib
import re

__all__ = ["EN", "EN_RE", "EN_STEMS", "LEXICON_SHA256", "ZH", "ZH_RE", "Entry"]

#: (task, weight)
Entry = tuple[str, float]

_ZH_TABLE = """
translation 5: 翻译 | 译成 | 译为 | 中译英 | 英译中 | 翻成 | 译文 | 英文怎么说 | 中文怎么说 | 日语怎么说 | 用英语怎么说 | 用英文怎么说 | 怎么翻 | 英文表达 | 英语表达 | 用英文说 | 用英语说 | 英文翻译 | 中文翻译 | 日语是什么意思 | 英语是什么意思 | 英文是什么意思 | 这句日语 | 这句英语 | 这句英文 | 这句韩语 | 粤语 | 转成普通话 | 翻译成文言文 | 文言文翻译 | 怎么读 | 译一下 | 翻下 | 翻一下 | 中翻英 | 英翻中 | 日翻中 | 中翻日 | 韩翻中
translation 2: 用英语 | 用英文 | 用日语 | 用法语 | 成英文 | 成中文 | 成英语 | 成日语 | 成法语 | 成德语 | 成韩语 | 成西班牙语 | 什么意思 | 意思是什么

summarization 5: 总结 | 摘要 | 概括 | 概述 | 中心思想 | 主要内容 | 内容提要 | 缩写成 | 归纳 | 提炼 | 梗概 | 核心信息 | 核心观点 | 要点列表 | 压缩成要点 | 条要点 | 几条要点 | 浓缩
summarization 2: 要点 | 简述 | 大意 | 一句话 | 精简 | 简要说明 | 讲了什么 | 说了什么

extraction 5: 提取 | 抽取 | 摘录 | 实体识别 | 命名实体 | 关键信息 | 关键词 | 找出所有 | 列出所有 | 结构化 | 出现的所有 | 找出来 | 所有的公司 | 所有人名 | 列出来 | 提到的所有 | 提到了哪些
extraction 2: 找出 | 找到 | 识别出 | 识别 | 人名 | 地名 | 名词 | 动词 | 形容词 | 日期 | 出现频率 | 出现的次数 | 出现次数 | 字段 | 表格中 | 文中提到 | 名称

classification 5: 分类 | 归类 | 归为 | 属于哪 | 哪一类 | 哪个类别 | 类别 | 情感分析 | 情感倾向 | 情感分类 | 分为两 | 分为三 | 分成两 | 分成三 | 划分为 | 哪种类型 | 什么类型 | 哪个学科 | 哪个领域 | 打标签 | 贴标签 | 属于什么 | 意图
classification 2.5: 分为 | 分成 | 正面 | 负面 | 中性 | 中立 | 积极还是消极 | 是否属于 | 垃圾邮件 | 判断该 | 判断这 | 是否为 | 还是

rewrite 5: 改写 | 重写 | 重述 | 润色 | 改述 | 转述 | 纠正 | 错别字 | 拼写错误 | 语法错误 | 同义词 | 反义词 | 换一种说法 | 换个说法 | 口语化 | 书面语 | 编辑以下 | 编辑下面 | 编辑这 | 编辑成 | 修改以下 | 修改下面 | 修改这段 | 更加简洁 | 更简洁 | 简明扼要 | 更加流畅 | 更流畅 | 更通顺 | 更清晰 | 改正 | 重新写 | 重新表述 | 拆分成 | 合并成 | 改成 | 改为 | 改得 | 更礼貌 | 礼貌一些 | 委婉一些 | 更委婉 | 文本纠错 | 纠错 | 白话 | 病句 | 修改病句 | 委婉 | 顺一下 | 改顺 | 改短 | 改长 | 润一润 | 润一下 | 说得 | 读着别扭 | 标点
rewrite 2: 修改 | 替换 | 简洁 | 流畅 | 通顺 | 正式 | 非正式 | 表达方式 | 转换为 | 转换成 | 缩短 | 扩写 | 压缩 | 风格 | 语气 | 用自己的话 | 更加生动 | 更生动

creative 5: 写一篇 | 写一首 | 写一个故事 | 写个故事 | 讲一个故事 | 编一个故事 | 写首 | 写篇 | 作一首 | 创作 | 续写 | 故事 | 诗歌 | 七言 | 五言 | 绝句 | 律诗 | 散文 | 小说 | 剧本 | 台词 | 文案 | 广告语 | 宣传语 | 口号 | 标语 | 作文 | 短文 | 新闻稿 | 演讲稿 | 发言稿 | 致辞 | 祝福语 | 贺词 | 对联 | 歌词 | 邀请函 | 邀请信 | 求职信 | 推荐信 | 感谢信 | 道歉信 | 情书 | 一封信 | 一封邮件 | 一封 | 笑话 | 段子 | 绕口令 | 扮演 | 假设你是 | 假如你是 | 想象你是 | 你现在是 | 角色扮演 | 请你作为 | 生成一篇 | 新文章 | 完整的文章 | 一篇文章 | 新闻报道 | 写一段 | 写一句 | 造句 | 起个标题 | 写一个标题 | 标题 | 广告 | 推文 | 朋友圈
creative 2: 写一 | 撰写 | 生成一段 | 生成一句 | 生成一个 | 一篇 | 一首 | 诗 | 文章 | 信 | 邮件 | 报道 | 日记 | 游记 | 读后感 | 观后感 | 想象 | 描写 | 童话 | 寓言 | 幽默 | 有趣的 | 对话 | 字的 | 字左右

brainstorming 5: 头脑风暴 | 点子 | 出主意 | 集思广益 | 起名 | 取名 | 起个名 | 取个名 | 推荐 | 建议 | 小贴士 | 小窍门 | 有哪些方法 | 哪些方法 | 什么方法 | 哪些办法 | 有什么办法 | 想法 | 创意 | 灵感 | 妙招 | 给我一些 | 提供一些 | 意见和看法 | 想几个 | 帮我想 | 店名 | 选题 | 有什么适合 | 有什么好玩 | 有什么推荐 | 什么好 | 清单 | 列一个 | 列个
brainstorming 2.5: 方法 | 办法 | 方案 | 技巧 | 提示 | 窍门 | 措施 | 途径 | 思路 | 计划 | 列出 | 列举 | 几种 | 提供 | 设计一款 | 设计一个 | 应用场景 | 如何提高 | 如何减少 | 如何改善 | 怎样才能 | 意见 | 看法 | 预测 | 未来 | 应用程序 | 名字 | 适合 | 活动

qa 3: 什么是 | 是什么 | 为什么 | 为何 | 是谁 | 谁是 | 哪一年 | 哪年 | 什么时候 | 在哪里 | 在哪儿 | 哪里 | 多大 | 多高 | 多远 | 多长 | 有何 | 如何理解 | 回答 | 解释 | 请问 | 选择题 | 填空 | 判断题 | 区别 | 不同之处 | 定义 | 含义 | 原理 | 原因 | 作用 | 解答 | 有什么不同 | 通过什么 | 是怎么 | 是如何
qa 1.5: 是否 | 有没有 | 能否 | 吗 | 呢 | 问题 | 介绍 | 描述 | 说明 | 叙述 | 阐述 | 讲解 | 怎么 | 如何 | 哪些 | 哪个 | 多少 | 历史 | 常识 | 描绘

chat 4: 你好 | 您好 | 嗨 | 哈喽 | 早上好 | 晚上好 | 下午好 | 晚安 | 早安 | 谢谢 | 多谢 | 在吗 | 在不在 | 聊聊 | 聊天 | 陪我 | 你是谁 | 你叫什么 | 你几岁 | 你喜欢 | 你觉得我 | 我好无聊 | 无聊 | 哈哈 | 嘿嘿 | 再见 | 拜拜 | 心情不好 | 难过 | 开心 | 好累 | 我很累 | 睡不着 | 你会什么 | 你能做什么 | 你是机器人 | 机器人吗 | 过得怎么样 | 过得好吗 | 好久不见 | 想你了 | 你呢 | 真的吗 | 好的 | 嗯嗯 | 你平时 | 你真 | 随便聊 | 聊点 | 好冷 | 好热 | 好困 | 饿了 | 陪我聊

analysis 5: 分析 | 利弊 | 优缺点 | 优劣 | 优势和劣势 | 利与弊 | 可行性 | 权衡 | 研判 | 评估 | 战略 | 竞争格局 | 多维度 | 多角度 | 根本原因 | 根因 | 深度剖析 | 剖析 | 洞察 | 决策 | 对策 | 影响因素 | 发展趋势 | 商业模式 | 取舍 | 比较分析 | 对比分析 | 案例分析
analysis 2: 对比 | 比较 | 评价 | 影响 | 趋势 | 策略 | 竞争 | 市场 | 报告 | 深入 | 全面 | 系统地 | 综合 | 因素 | 机遇 | 挑战 | 意义 | 风险 | 前景 | 多方面 | 应该选择 | 选哪个 | 哪个更好 | 值得吗 | 怎么看

reasoning 5: 逻辑推理 | 推理 | 推断 | 谜题 | 谜语 | 脑筋急转弯 | 悖论 | 说谎 | 说真话 | 真话 | 假话 | 逻辑题 | 智力题 | 排第几 | 第几名 | 能否推出 | 能推出 | 可以推出 | 三段论 | 由此可知 | 大约有多少 | 大概有多少 | 费米 | 是否成立 | 这个推理 | 老大 | 老二 | 老三 | 兄弟姐妹 | 谁在说谎 | 谁说了真话 | 下一个数 | 找规律 | 规律 | 过河 | 天平 | 称几次 | 说明思路 | 开关控制 | 怎样判断哪 | 怎么可能 | 陷阱 | 不是一类 | 不属于同一类 | 从左到右 | 从右到左 | 是真是假 | 说真话的是
reasoning 5: 最能加强 | 最能削弱 | 最能支持 | 最能反驳 | 削弱上述 | 加强上述 | 支持上述 | 如果为真 | 若为真 | 一定为真 | 一定为假 | 可能为真 | 不可能为真 | 必然为真 | 可以推出 | 不能推出 | 论证方式 | 论证的漏洞 | 逻辑漏洞 | 隐含假设 | 前提假设
reasoning 1.5: 逻辑 | 一步一步 | 逐步 | 前提 | 结论 | 必然 | 一定是 | 关系 | 哥哥 | 姐姐 | 弟弟 | 妹妹 | 父亲 | 儿子 | 女儿 | 估算 | 估计 | 左边 | 右边 | 怎么知道 | 星期几 | 顺序
reasoning 0.7: 如果 | 那么 | 所有 | 有些 | 一定 | 因此 | 所以 | 思考

code 5: 代码 | 编程 | 算法 | 调试 | 报错 | 编译 | 正则表达式 | 正则 | 数据结构 | 链表 | 二叉树 | 哈希表 | 时间复杂度 | 空间复杂度 | 递归 | 单元测试 | 重构 | 爬虫 | 源码 | 源代码 | 写一个函数 | 写一个程序 | 编写程序 | 编程语言 | git | 中间件 | go语言 | go 语言 | 服务端 | 微服务 | 并发 | linux | mysql | redis | mongodb | postgresql | 命令行 | 端口 | 进程 | 线程 | 内存泄漏 | b+树 | vue | vue3 | react | 响应式 | 组件 | 前端框架 | shell | excel公式 | 公式函数 | k8s | kubernetes | awk | grep | docker | 虚拟环境 | pytest | 死锁 | 竞态
code 2.5: 函数 | 程序 | 脚本 | 前端 | 后端 | 数据库 | 查询语句 | 变量 | 字符串 | 数组 | 对象 | 异常 | 接口 | 编写一个 | 实现一个 | 列表 | 字典 | 循环 | 服务器 | 工程师 | 开发者 | 报错信息 | 日志 | 索引 | 数据表 | 表结构 | 配置文件 | 安装包 | 编码 | 命令 | pod | 镜像 | 依赖
code 1: 实现 | 开发 | 部署 | 框架 | 模块 | 参数 | 返回值 | 输出 | 输入示例 | 运行 | 修复 | 优化 | 排序 | 应用程序 | 计算机 | 计算机网络

math 5: 计算 | 求解 | 解方程 | 方程 | 方程组 | 不等式 | 等于多少 | 面积 | 周长 | 体积 | 表面积 | 概率 | 平均数 | 导数 | 积分 | 极限 | 数列 | 等差 | 等比 | 函数的 | 最小值 | 最大值 | 证明 | 整除 | 质数 | 素数 | 公约数 | 公倍数 | 因式分解 | 几何 | 勾股 | 定理 | 排列 | 组合数 | 之和 | 之差 | 之积 | 化简 | 期望值 | 方差
math 2: 半径 | 直径 | 百分之 | 百分比 | 分数 | 小数 | 乘以 | 除以 | 平方 | 立方 | 三角形 | 长方形 | 正方形 | 圆柱 | 圆的 | 倍数 | 答案
quantity 5: 多少元 | 多少钱 | 多少个 | 多少人 | 多少名 | 多少米 | 多少千米 | 多少千克 | 多少克 | 多少天 | 多少页 | 多少台 | 多少盒 | 多少分钟 | 多少小时 | 多少平方 | 多少立方 | 多少厘米 | 多少岁 | 多少次 | 多少块 | 多少本 | 多少只 | 多少张 | 多少辆 | 多少吨 | 多少公里 | 几个 | 几倍 | 几天 | 几岁 | 几只 | 几本 | 几次 | 几人 | 几颗 | 一共 | 共有多少 | 还剩 | 剩下多少 | 还有多少 | 应付 | 需要多少 | 要多少 | 本息 | 合计
quantity 2: 多少 | 求 | 速度 | 路程 | 利润 | 利息 | 折扣 | 打折 | 倍 | 平均每 | 平均 | 每天 | 每小时 | 每分钟 | 每个 | 每人 | 每班 | 每批 | 每区 | 元 | 千克 | 厘米 | 米 | 公里 | 千米 | 小时 | 分钟 | 估算 | 比

_depth 1: 全面 | 深入 | 详细 | 系统地 | 系统性 | 多维度 | 多角度 | 多方面 | 战略 | 长期 | 风险 | 情景 | 路线图 | 利弊 | 优缺点 | 权衡 | 根本原因 | 利益相关 | 案例 | 评估 | 对比 | 综合 | 可行性 | 竞争格局 | 商业模式
_constraint 1: 不少于 | 不超过 | 至少 | 必须 | 要求 | 格式 | 字以内 | 限制 | 字数
"""

_EN_TABLE = """
translation 5: translate* | translation* | translator | how do you say | how to say | into english | into chinese | into french | into german | into spanish | into japanese | into korean | into italian | into russian | into portuguese | into arabic | to english | to chinese | to french | to german | to spanish | to japanese | to korean | in mandarin | mandarin | mean in english | mean in chinese | means in english | in english? | english word for | chinese word for | in cantonese | cantonese
translation 2: in english | in chinese | in french | in german | in spanish | in japanese | chinese | french | german | spanish | japanese | korean | italian | russian | portuguese | arabic | what does it mean | what does this mean

summarization 5: summar* | tl;dr | tldr | recap | synopsis | sum up | sum it up | in a nutshell | gist | condense | boil down | key takeaways | takeaways | main points | boil | gist of | executive summary | key findings
summarization 2: key points | main points | main ideas | main idea | overview | brief* | abstract | outline | short version | one sentence | one paragraph | bullet points | highlights

extraction 5: extract* | named entit* | pull out | parse out | scrape | find all | list all the | identify all | mentioned in | appear in | appearances | identify the named | parse the following | parse this | all the names | which names | list every | list each | mentioned in the
extraction 2: identify | entities | entity | json | csv | yaml | table | dates | names | addresses | phone numbers | emails | keywords | fields | structured | occurrences | the highest | the lowest | from the text | from the passage | from the following | given data | records | count how many | following data | information from

classification 5: classif* | categori* | sentiment | which category | what category | which class | spam or | label each | label the | tag each | assign them | assign each | sort the following | sort these | group the following | is it positive | positive or negative | tag the | intent | formal or informal | is the tone | determine whether each | fake or genuine | spam or not | is this spam | fact or an opinion | fact or opinion | urgent or not | which genre | what genre | or not urgent
classification 2: category | categories | label | labels | positive | negative | neutral | belongs to | belong to | genre | topic of | type of text | is this a | is it a

rewrite 5: rewrite* | rephras* | paraphras* | reword* | proofread* | polish | copyedit* | grammatical errors | grammar errors | fix the grammar | correct the grammar | correct any | correct the spelling | spelling mistakes | edit the following | edit this | edit my | make it more | make this more | make it sound | more concise | more formal | less formal | more professional | more polite | simplify | shorten | tone down | say it differently | in other words | change this | first person | third person | turn these | turn this into | turn it into | active voice | passive voice | more polite | friendlier | fix the typos | typos | typo | expand this | restate | plain language | gender-neutral | gender neutral | make the following | sound more | sound less | smooth it out | smooth out | clunky | wordy | punctuation | tighten | less robotic | more natural
rewrite 2: edit | revise | improve the | concise | formal | informal | casual | tone | wording | grammar | spelling | plain english | simpler | clearer | fluent | in the style | style of

creative 5: story | stories | poem* | poetry | haiku | limerick | sonnet | lyrics | song | screenplay | script for | blog post | essay | novel | fiction* | fairy tale | fable | slogan* | tagline* | jingle | joke | jokes | cover letter | letter | email | e-mail | speech | toast | eulogy | advertisement | ad copy | product description | press release | announcement | newsletter | headline | tweet | caption | podcast | movie review | imagine you | imagine yourself | imagine being | picture yourself | pretend | act as | role of | roleplay | role-play | persona | embody | what if | compose | draft | craft | narrative | dialogue | monologue | soliloquy | vivid | captivating | catchy | persuasive | rhyme* | how would you | introduce yourself | you are a | you are an
creative 2: write | writing | describe your | tell me a | short | creative | invent | fictional | scene | plot | chapter | motivate | character | characters | review | engaging | as a

brainstorming 6: brainstorm*
brainstorming 5: ideas | idea for | ideas for | suggest* | recommend* | recommendation* | tips | tip for | come up with | name ideas | names for | think of | alternatives | options for | things to do | what should i | where should i | which should i | plan for | itinerary | inspiration | topics | what are some good | what could i | any ideas | gift ideas | what can i | could try | things i could | packing list | checklist
brainstorming 2: ways to | ways of | list | some | several | best | top | creative ways | strategies for | how can i | how do i | how to | improve my | increase my | help me

qa 3: what | why | who | whom | whose | when | where | which | explain* | describe | define | definition | meaning of | difference between | differences between | what is | what are | what was | tell me about | how does | how do | how is | how are | is it true | is there | are there | does | do you know | fact* | history of | capital of | answer the | question | questions
qa 1.5: how | can you | could you | explain the | concept | process | principle | theory | mechanism | work | works | causes | cause | effect | effects | compared | versus | vs | discuss

chat 4: hi | hello | hey | hiya | howdy | greetings | good morning | good evening | good night | good afternoon | thanks | thank you | thx | bye | goodbye | see you | how are you | how's it going | how is it going | what's up | whats up | who are you | what are you | your name | are you a | do you like | do you have feelings | i'm bored | im bored | i am bored | i feel | i'm feeling | lol | haha | nice to meet | let's chat | lets chat | chat with | talk to me | cheer me up | ok | okay | cool | great | how's your day | how was your day | your day | i just got | guess what | miss you | are you there | you there | just chat | chat for | ugh | meh | yay | so happy | so tired | what are you up to
chat 2: you | your | me | my | i'm | feeling | today | sad | happy | tired | lonely

analysis 5: analy* | pros and cons | advantages and disadvantages | strengths and weaknesses | trade-off* | tradeoff* | swot | root cause* | feasibility | due diligence | competitive landscape | market analysis | cost-benefit | cost benefit | risk assessment | strategy | strategies | strategic | go-to-market | business plan | compare and contrast | multi-dimensional | multidimensional | critically | in-depth | second-order effects | second order effects | key factors | factors driving | root causes
analysis 2.5: implications of | impact of | impacts of | evaluate | evaluation | assess* | critique | should we | should i | which is better | scenario* | forecast* | decision | compare | comparison | contrast | implications | effects of | break down | policy responses
analysis 1.5: impact | risks | risk | consider* | factors | trend* | market | competitor* | competition | long-term | short-term | stakeholder* | investment | policy | policies | weigh | perspective* | holistic | comprehensive | detailed | framework

reasoning 5: riddle* | puzzle* | logic puzzle | brain teaser | brainteaser | true, false, or uncertain | true or false | deduce | deduction | syllogism | paradox | knights and knaves | always lies | tells the truth | does not belong | doesn't belong | odd one out | current position | father of | mother of | brother of | sister of | lateral thinking | fermi | approximately how many | roughly how many | estimate how many | step-by-step | step by step | reasoning | think carefully | reason it out | reason through | explain your reasoning | comes next | next in the sequence | lies | lying | liar | truth-teller | always tells | who is the tallest | second tallest | who is lying | solve this riddle | solve the riddle | this riddle | solve this puzzle | next letter | next number | in the sequence | what position | the trick | think it through | labeled incorrectly | labelled incorrectly | doesn't fit | does not fit | figure out the pattern | what can we conclude | can we conclude | how is this possible | how is that possible | to the right of | to the left of | either end | sit in a row | knights | knaves
reasoning 5: if true | most strengthens | most weakens | most seriously weakens | most strongly supports | most strongly supported | strengthen the argument | weaken the argument | strengthens the argument | weakens the argument | undermines the argument | vulnerable to criticism | flaw in the argument | flawed because | flaw in the reasoning | pattern of reasoning | parallel in its reasoning | logically completes | properly inferred | assumption required | assumption on which | justify the conclusion | must be true | could be true | cannot be true | must be false | could be false | must also be true
reasoning 2: logic* | logical* | infer* | conclude | conclusion | premise* | assume | assumption | valid | explain your answer | estimate* | brothers | sisters | brother | sister | overtake* | overtook | direction | shadow | facing | which one | average human | globally | on earth | in a lifetime | throughout history | in the world | each day | every day | per day | in a minute | typical | could be the reason | could be the reasons | therefore | if all | some of | none of | must be | relationship between | taller than | shorter than | older than | younger than | sequence | pattern

code 5: programming | python | javascript | typescript | golang | kotlin | c++ | c# | sql | regex | regular expression | algorithm* | debug* | compile* | compiler | recursion | recursive | linked list | binary tree | binary search | hash map | hashmap | hash table | data structure* | dynamic programming | time complexity | space complexity | big o | o(n) | o(1) | o(log n) | unit test* | refactor* | stack trace | traceback | segfault | runtime error | syntax error | dockerfile | kubernetes | leetcode | snippet | source code | codebase | pull request | bash script | shell script | powershell | django | flask | react | node.js | nodejs | pandas | numpy | sorting algorithm | boyer-moore | git rebase | git merge | git commit | pull request | merge conflict | middleware | microservice* | concurrency | goroutine* | async/await | http server | rest api | graphql | linux | unix | cron | crontab | yield | generator function | inner join | left join | right join | outer join | mysql | postgres | postgresql | redis | mongodb | vue | angular | excel formula | spreadsheet formula | vlookup | command line | port in use | eaddrinuse | awk | sed | grep | docker-compose | github action* | gitlab ci | ci pipeline | pytest | race condition | deadlock | segmentation fault | k8s | pod | crashloopbackoff | virtualenv | venv
code 2.5: code | coding | program | programs | function | functions | script | scripts | bug | bugs | java | rust | swift | ruby | php | html | css | api | apis | endpoint | sdk | class | classes | method | array | arrays | stack | queue | exception | git | docker | npm | pip | library | implement* | variable | variables | string | strings | boolean | loop | loops | iterate | lambda | pointer | struct | website | web page | webpage | backend | frontend | database | query | repository | software | integer array | sorted array | sorted arrays | sorted lists | nth | http | server | endpoint* | developer | engineer | logging | keyword | generator | join | formula | port | process id | thread | threads | docker | container | containers | command | shell
code 1: develop | build | deploy* | install | server | input | output | print | return | returns | file | files | directory | command | terminal | parse | parsing | sorted | node | nodes | tree | graph | matrix | framework | json | app | application | methods | package

math 5: calculate* | calculation | compute | solve | equation* | inequality | probability | remainder | divisible | divided by | multiplied by | square root | derivative | integral | area of | perimeter | volume of | circumference | what is the value | find the value | value of | least common multiple | greatest common divisor | lcm | gcd | log | logarithm | interior angle* | angle between | real solutions | solutions of | prime factor* | factorial | permutation* | combination* | matrix | determinant | polynomial | quadratic | theorem | prove that | arithmetic | geometric | percent of | % of | express | simplify the expression | simplify the fraction | expected value | variance | standard deviation
math 2: ratio | fraction | radius | diameter | triangle | rectangle | hexagon | sum of | product of | integer | integers | digit | digits | f(x) | angle | angles | average | mean | median
quantity 5: how much | how many | how old | how far | how fast | how tall | how long will | how long did | how long does it take | how long would | what is the total | in total | altogether | percent | percentage | average speed | what is the area | what is the probability | the length of | what is the average | what is the height | what is the cost | what is the price | what is the weight | what is the sum | how long is | how much money | much money | the total number | total number of | how many more | how many fewer | what percentage
quantity 2: each | per | interest | discount | profit | cost | costs | price | dollars | cents | miles | km | kilometers | meters | feet | inches | pounds | kg | cm | hours | minutes | twice | half | third | quarter | double | triple | times as many | times more | more than | less than | fewer | left | remaining | total | spend | spent | earn* | paid | pay | buy | bought | sells | sold | save | saves | week | weeks | months | years old | number of | taller | shorter | older | younger | faster | slower | find

_depth 1: comprehensive | in-depth | in depth | thorough | thoroughly | detailed | multi-dimensional | multidimensional | holistic | strategy | strategic | strategies | trade-off* | tradeoff* | long-term | risk | risks | scenario* | roadmap | recommendations | stakeholder* | pros and cons | swot | implications | root cause* | case stud* | evaluate | assess* | compare | go-to-market | business plan | feasibility | competitive landscape
_constraint 1: at least | no more than | at most | must | should include | make sure | within | words or less | in under | format | limit | exactly
_numword 1: two | three | four | five | six | seven | eight | nine | ten | eleven | twelve | fifteen | twenty | thirty | forty | fifty | hundred | thousand | million | half | twice | thrice | double | triple | third | quarter | dozen
"""


def _parse(table: str) -> dict[str, list[Entry]]:
    out: dict[str, list[Entry]] = {}
    for line in table.strip().splitlines():
        line = line.strip()
        if not line:
            continue
        head, _, body = line.partition(":")
        task, weight = head.split()
        for keyword in body.split("|"):
            keyword = keyword.strip()
            if keyword:
                out.setdefault(keyword, []).append((task, float(weight)))
    return out


def _trie(words: list[str], *, latin: bool) -> str:
    """An alternation that follows one path per position (sre has no Aho-Corasick)."""
    root: dict[str, dict] = {}
    for word in words:
        node = root
        for char in word.rstrip("*"):
            node = node.setdefault(char, {})
        node["*" if word.endswith("*") else ""] = {}

    def build(node: dict[str, dict]) -> str:
        alts = []
        for char in sorted(k for k in node if k not in ("", "*")):
            piece = r"\s+" if char == " " else re.escape(char)
            alts.append(piece + build(node[char]))
        if "*" in node:
            alts.append(r"[a-z0-9'\-]*")
        if "" in node:
            alts.append(r"(?![a-z0-9_])" if latin else "")
        if len(alts) == 1:
            return alts[0]
        return "(?:" + "|".join(alts) + ")"

    body = build(root)
    return r"(?<![a-z0-9_])" + body if latin else body


ZH: dict[str, list[Entry]] = _parse(_ZH_TABLE)
_EN_ALL: dict[str, list[Entry]] = _parse(_EN_TABLE)
# Keywords of the Chinese table that start with a Latin letter ("git", "go语言")
# go to the Latin scanner: in the CJK trie they would be tried at every position
# of English text.
for _keyword in [k for k in ZH if k[0].isascii()]:
    _EN_ALL.setdefault(_keyword.lower(), []).extend(ZH.pop(_keyword))
#: Exact English keywords (spaces normalised) → entries.
EN: dict[str, list[Entry]] = {k: v for k, v in _EN_ALL.items() if not k.endswith("*")}
#: English stems (without the ``*``) → entries.
EN_STEMS: dict[str, list[Entry]] = {k[:-1]: v for k, v in _EN_ALL.items() if k.endswith("*")}

ZH_RE = re.compile(_trie(sorted(ZH), latin=False))
EN_RE = re.compile(_trie(sorted(_EN_ALL), latin=True))

#: Fingerprint of the tables: a model trained on the rules' scores records it.
LEXICON_SHA256 = hashlib.sha256((_ZH_TABLE + _EN_TABLE).encode("utf-8")).hexdigest()
