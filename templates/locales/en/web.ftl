# The pages' texts (templates/web/ and the messages the server shows), English: the tutorial's
# words where it has them. Each id must exist in every locale. In a page, a message is markup:
# it may hold tags (<strong>, <a>); its arguments are escaped.

site-title = Confirm your email
site-footer = Email confirmation service
back-home = Back to the home page

## The home page
home-title = Register
field-email = Email
field-email-placeholder = email
honeypot-label = Leave this field empty
register-button = Register!
code-offer = Enter the code from the email
correct-hint = Mistyped your address? Correct it below and register again: the mistyped address gets no reminder, and its account expires unconfirmed.
resend-title = Didn't get the email?
resend-button = Send the confirmation email again
users-title = Registered Users

## Flashed after a redirect (the tutorial's words)
flash-registered = Thank you for registering. Please check your email to confirm.
flash-confirmed = You have confirmed your account. Thanks!
flash-already-confirmed = Account already confirmed.
flash-invalid-link = The confirmation link is invalid or has expired.
flash-resent = If that address has an account waiting for confirmation, a new confirmation email is on its way.

## Form errors
form-expired-title = Form expired
form-expired = This form has expired or did not come from this site. Please go back to the home page, reload it and try again.
form-too-large = The form was too large.
form-unreadable = The form could not be read. Please submit it from this page.
email-error-empty = Please enter an email address.
email-error-too-long = That email address is too long (at most 254 characters).
email-error-local-too-long = The part before the @ is too long (at most 64 characters).
email-error-control = The email address contains a line break or another control character.
email-error-display-name = Please enter just the address (like name@example.com), without a name or angle brackets.
email-error-at = The email address must contain exactly one @.
email-error-local = The part before the @ contains characters that are not allowed.
email-error-domain = The domain after the @ is not valid.

## Other answers
too-many-title = Too many requests
too-many = You have sent this form too often. Please wait a minute and try again.
not-found-title = Page not found
not-found = There is nothing at this address.

## The code page
code-title = Enter the code from the email
# $address: the registered address, masked
code-sent-to = We sent a six-digit code to <strong>{ $address }</strong>, beside the confirmation link.
code-explain = The confirmation email has a six-digit code beside its link. Enter it with the address you registered.
field-code = Code
code-back = <a href="/">Back to the registration page</a> (to ask for a new email).
code-digits = The code is the six digits in the email.
code-email-missing = Enter the address you registered.
code-wrong = That code does not work. Check it against the newest email; after five wrong tries a code stops working, and you can ask for a new email on the registration page.

## The confirmation page
confirm-title = Confirm your account
confirm-question = Confirm the account registered for <strong>{ $address }</strong>?
confirm-button = Confirm my account
confirm-ignore = If you did not sign up, close this page: nothing happens unless the button is pressed.

## The stop page
stop-title = Stop emails to this address
stop-explain = Someone registered <strong>{ $address }</strong> here. If it was not you, press the button: we will not send any more email to this address.
stop-button = Stop emails to this address
stop-ignore = If you did sign up, close this page: nothing happens unless the button is pressed.
link-invalid-title = Link invalid
stop-link-invalid = This link is invalid or has expired. If you keep getting emails you did not ask for, reply to one of them.
stop-done-title = Emails stopped
stop-done = We will not send any more email to this address. Sorry for the trouble.

## Accounts: passwords, sign-in, the account page, the password reset
field-password = Password (optional)
password-hint = With a password you can sign in once your address is confirmed. 8 to 128 characters.
field-current-password = Current password
field-new-password = New password
password-too-short = The password must have at least 8 characters.
password-too-long = The password must have at most 128 characters.
home-account-links = Have an account? <a href="/signin">Sign in</a> · <a href="/forgot">Forgot your password?</a>
signin-title = Sign in
signin-button = Sign in
signin-wrong = That address and password do not match an account.
signin-unconfirmed = Confirm your address first: open the link in the confirmation email.
signin-step-expired = The sign-in took too long. Please sign in again.
signin-code-title = Two-factor sign-in
signin-code-explain = Enter the six-digit code from your authenticator app, or one of your recovery codes.
signin-code-wrong = That code does not work. Codes change every 30 seconds and each works once.
forgot-link = Forgot your password?
account-title = Your account
account-address = Address
account-confirmed-since = Confirmed since
account-password-title = Password
account-password-button = Change the password
account-current-wrong = The current password is not right.
totp-title = Two-factor sign-in
# $left: how many recovery codes are unused
totp-on = Two-factor sign-in is on. Recovery codes left: { $left }.
totp-off = Two-factor sign-in is off. Turn it on to be asked for a code from an authenticator app at every sign-in.
totp-setup-button = Turn on two-factor sign-in
totp-disable-button = Turn off two-factor sign-in
totp-scan = Scan this QR code with an authenticator app, then enter the six-digit code it shows.
totp-qr-label = QR code of the authenticator secret
totp-type = Or type this secret into the app:
totp-enable-button = Turn on
totp-setup-expired = The QR code expired. Please start again.
totp-disabled = Two-factor sign-in is off.
totp-enabled = Two-factor sign-in is on.
recovery-title = Your recovery codes
recovery-explain = Keep these ten codes somewhere safe. Each signs you in once if you lose your authenticator app. They are shown only now.
recovery-done = Back to your account
sessions-title = Sessions
signout-button = Sign out
signout-everywhere-button = Sign out everywhere
forgot-title = Forgot your password?
forgot-explain = Enter the address of your account. If it has a confirmed account, we will email it a link to choose a new password.
forgot-button = Email me a link
forgot-sent = If that address has a confirmed account, an email with a link is on its way. The link works for 30 minutes.
reset-title = Choose a new password
# $address: the account's address, masked
reset-for = For the account <strong>{ $address }</strong>. Every signed-in browser will be signed out.
reset-button = Set the new password
reset-link-invalid = This link is invalid, has expired or was already used. Ask for a new one with "Forgot your password?".
reset-done-title = Password changed
reset-done = Your password is changed. <a href="/signin">Sign in</a> with it.
