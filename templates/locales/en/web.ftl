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
