# The emails' texts (templates/email/), English. Each id must exist in every locale.

email-subject = Confirm Your Account
email-intro = Thanks for signing up. Please open this link and press "Confirm my account" to activate your account.
email-button = Confirm your account
email-paste = Or paste this link into your browser:
# $url: the page that takes the code (a link in the HTML part)
email-code = Reading this on another device? Enter this code at { $url } instead:
# $duration: how long the link and the code work (the duration message)
email-lifetime = The link and the code work for { $duration }. If it has expired, ask for a new one with "Didn't get the email?" on the registration page.
email-ignore = If you did not sign up, you can ignore this email: nothing happens unless the button on that page is pressed.
email-cheers = Cheers!
email-stop = I did not sign up: stop emails to this address

# The password-reset email. $duration: how long the link works (the duration message)
reset-subject = Reset Your Password
reset-intro = Someone asked to reset the password of your account. Open this link and choose a new password.
reset-button = Choose a new password
reset-lifetime = The link works once, for { $duration }.
reset-ignore = If you did not ask for this, ignore this email: your password stays as it is.

# The notice after a password change
changed-subject = Your Password Was Changed
changed-intro = The password of your account was just changed, and every signed-in browser was signed out.
changed-not-you = If you did not do this, reset your password now:

# $n: a whole number; $unit: hour, minute or second
duration =
    { $unit ->
        [hour]
            { $n ->
                [one] 1 hour
               *[other] { $n } hours
            }
        [minute]
            { $n ->
                [one] 1 minute
               *[other] { $n } minutes
            }
       *[second]
            { $n ->
                [one] 1 second
               *[other] { $n } seconds
            }
    }
