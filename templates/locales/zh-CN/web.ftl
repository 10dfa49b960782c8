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

## 账户：密码、登录、账户页面、重置密码
field-password = 密码（可选）
password-hint = 设置密码后，确认地址即可登录。8 到 128 个字符。
field-current-password = 当前密码
field-new-password = 新密码
password-too-short = 密码至少需要 8 个字符。
password-too-long = 密码最多 128 个字符。
home-account-links = 已有账户？<a href="/signin">登录</a> · <a href="/forgot">忘记密码？</a>
signin-title = 登录
signin-button = 登录
signin-wrong = 该地址和密码与任何账户都不匹配。
signin-unconfirmed = 请先确认您的地址：打开确认邮件中的链接。
signin-step-expired = 登录耗时过长。请重新登录。
signin-code-title = 两步验证登录
signin-code-explain = 请输入身份验证器应用中的六位数验证码，或一个恢复码。
signin-code-wrong = 该验证码无效。验证码每 30 秒更换一次，且每个只能使用一次。
forgot-link = 忘记密码？
account-title = 您的账户
account-address = 地址
account-confirmed-since = 确认时间
account-password-title = 密码
account-password-button = 更改密码
account-current-wrong = 当前密码不正确。
totp-title = 两步验证登录
totp-on = 两步验证已开启。剩余恢复码：{ $left }。
totp-off = 两步验证已关闭。开启后，每次登录都需要输入身份验证器应用中的验证码。
totp-setup-button = 开启两步验证
totp-disable-button = 关闭两步验证
totp-scan = 请用身份验证器应用扫描此二维码，然后输入应用显示的六位数验证码。
totp-qr-label = 身份验证器密钥的二维码
totp-type = 或在应用中输入此密钥：
totp-enable-button = 开启
totp-setup-expired = 二维码已过期。请重新开始。
totp-disabled = 两步验证已关闭。
totp-enabled = 两步验证已开启。
recovery-title = 您的恢复码
recovery-explain = 请妥善保存这十个恢复码。如果您丢失了身份验证器应用，每个恢复码可用于登录一次。它们只显示这一次。
recovery-done = 返回您的账户
sessions-title = 会话
signout-button = 退出登录
signout-everywhere-button = 在所有设备上退出登录
forgot-title = 忘记密码？
forgot-explain = 请输入您账户的地址。如果该地址有已确认的账户，我们会向其发送一个设置新密码的链接。
forgot-button = 给我发送链接
forgot-sent = 如果该地址有已确认的账户，带有链接的邮件正在发送中。链接的有效期为 30 分钟。
reset-title = 设置新密码
reset-for = 账户 <strong>{ $address }</strong>。所有已登录的浏览器都将退出登录。
reset-button = 设置新密码
reset-link-invalid = 此链接无效、已过期或已被使用。请通过“忘记密码？”重新申请。
reset-done-title = 密码已更改
reset-done = 您的密码已更改。请使用新密码<a href="/signin">登录</a>。
