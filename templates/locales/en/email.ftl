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
