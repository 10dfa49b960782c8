# 邮件文本（templates/email/），简体中文。每个 id 都必须在所有语言中存在。

email-subject = 请确认您的账户
email-intro = 感谢您的注册。请打开此链接并点击“确认我的账户”以激活您的账户。
email-button = 确认您的账户
email-paste = 或将此链接复制到浏览器中打开：
email-code = 在其他设备上阅读此邮件？请在 { $url } 输入以下验证码：
email-lifetime = 链接和验证码的有效期为 { $duration }。如已过期，请在注册页面的“没有收到邮件？”处重新申请。
email-ignore = 如果您没有注册，请忽略此邮件：除非在该页面上点击按钮，否则不会发生任何事情。
email-cheers = 祝好！
email-stop = 我没有注册：不要再向此地址发送邮件

reset-subject = 重置您的密码
reset-intro = 有人请求重置您账户的密码。请打开此链接并设置新密码。
reset-button = 设置新密码
reset-lifetime = 此链接只能使用一次，有效期为 { $duration }。
reset-ignore = 如果这不是您本人的请求，请忽略此邮件：您的密码不会改变。

changed-subject = 您的密码已更改
changed-intro = 您账户的密码刚刚被更改，所有已登录的浏览器均已退出登录。
changed-not-you = 如果这不是您本人的操作，请立即重置密码：

duration =
    { $unit ->
        [hour] { $n } 小时
        [minute] { $n } 分钟
       *[second] { $n } 秒
    }
