# 页面文本（templates/web/ 以及服务器显示的消息），简体中文。每个 id 都必须在所有语言中存在。
# 在页面中，消息是标记：可以包含标签（<strong>、<a>）；其参数会被转义。

site-title = 确认您的邮箱
site-footer = 邮箱确认服务
back-home = 返回首页

## 首页
home-title = 注册
field-email = 邮箱
field-email-placeholder = 邮箱地址
honeypot-label = 请勿填写此栏
register-button = 注册！
code-offer = 输入邮件中的验证码
correct-hint = 邮箱地址输错了？请在下方更正后重新注册：输错的地址不会收到提醒，其账户将在未确认状态下过期。
resend-title = 没有收到邮件？
resend-button = 重新发送确认邮件
users-title = 已注册用户

## 跳转后显示的提示
flash-registered = 感谢您的注册。请查收邮件以完成确认。
flash-confirmed = 您已确认您的账户。谢谢！
flash-already-confirmed = 账户已确认。
flash-invalid-link = 确认链接无效或已过期。
flash-resent = 如果该地址有等待确认的账户，新的确认邮件已在发送途中。

## 表单错误
form-expired-title = 表单已过期
form-expired = 此表单已过期或并非来自本站。请返回首页，刷新后重试。
form-too-large = 表单内容过大。
form-unreadable = 无法读取表单。请从本页面提交。
email-error-empty = 请输入邮箱地址。
email-error-too-long = 邮箱地址过长（最多 254 个字符）。
email-error-local-too-long = @ 之前的部分过长（最多 64 个字符）。
email-error-control = 邮箱地址包含换行符或其他控制字符。
email-error-display-name = 请只输入地址（例如 name@example.com），不要包含姓名或尖括号。
email-error-at = 邮箱地址必须且只能包含一个 @。
email-error-local = @ 之前的部分包含不允许的字符。
email-error-domain = @ 之后的域名无效。

## 其他回应
too-many-title = 请求过多
too-many = 您提交此表单过于频繁。请稍等一分钟后重试。
not-found-title = 页面不存在
not-found = 此地址没有任何内容。

## 验证码页面
code-title = 输入邮件中的验证码
code-sent-to = 我们已向 <strong>{ $address }</strong> 发送了六位数验证码，位于确认链接旁边。
code-explain = 确认邮件中在链接旁边附有六位数验证码。请连同您注册时使用的地址一起输入。
field-code = 验证码
code-back = <a href="/">返回注册页面</a>（以申请新的邮件）。
code-digits = 验证码是邮件中的六位数字。
code-email-missing = 请输入您注册时使用的地址。
code-wrong = 该验证码无效。请与最新的邮件核对；输错五次后验证码将失效，您可以在注册页面申请新的邮件。

## 确认页面
confirm-title = 确认您的账户
confirm-question = 确认为 <strong>{ $address }</strong> 注册的账户？
confirm-button = 确认我的账户
confirm-ignore = 如果您没有注册，请关闭此页面：除非点击按钮，否则不会发生任何事情。

## 退订页面
stop-title = 停止向此地址发送邮件
stop-explain = 有人在此注册了 <strong>{ $address }</strong>。如果不是您本人，请点击按钮：我们将不再向此地址发送任何邮件。
stop-button = 停止向此地址发送邮件
stop-ignore = 如果确实是您注册的，请关闭此页面：除非点击按钮，否则不会发生任何事情。
link-invalid-title = 链接无效
stop-link-invalid = 此链接无效或已过期。如果您持续收到并非您申请的邮件，请回复其中一封。
stop-done-title = 已停止发送邮件
stop-done = 我们将不再向此地址发送任何邮件。抱歉给您带来不便。
