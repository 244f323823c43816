"""What each kind of notice says: its title, its body and its email template, as product
strings (keys of the gettext catalogues, translated for each recipient)."""
from __future__ import annotations

from dataclasses import dataclass

from domain.translations.translator import N_


@dataclass(frozen=True)
class NoticeText:
    """The strings of one kind of notice (``%(name)s`` placeholders) and its email template."""

    title: str
    body: str
    template: str = "notice"


WELCOME = NoticeText(N_("Welcome to Allotment, %(name)s"),
                     N_("%(tenant)s is ready. Invite your team and set up your organisation."),
                     template="welcome")
RECEIPT = NoticeText(N_("Receipt: %(product)s"),
                     N_("You were charged %(amount)s for %(product)s. Payment reference: %(reference)s."))
PURCHASE_FAILED = NoticeText(N_("Payment failed: %(product)s"),
                             N_("The payment for %(product)s did not go through: %(reason)s. "
                                "Nothing was charged."))
REFUND = NoticeText(N_("Refunded: %(product)s"),
                    N_("%(amount)s for %(product)s was refunded to your card. "
                       "Refund reference: %(reference)s."))
PROMOTED = NoticeText(N_("%(tenant)s has its own database"),
                      N_("All of %(tenant)s's data (%(rows)s rows) now lives in a database of its own."))
ASSET_READY = NoticeText(N_("%(filename)s is ready"), N_("%(filename)s was processed and can be downloaded."))
ASSET_REJECTED = NoticeText(N_("%(filename)s was rejected"),
                            N_("%(filename)s was not accepted: %(reason)s. Nothing of it was kept."))
TRIAL_ENDING = NoticeText(N_("The trial of %(tenant)s ends on %(date)s"),
                          N_("Choose a plan before %(date)s to keep %(tenant)s running. "
                             "Your data stays where it is."))
PUBLISHED = NoticeText(N_("New publication: %(title)s"), N_("%(author)s published \"%(title)s\"."))
INVITATION = NoticeText(N_("You are invited to %(tenant)s"),
                        N_("%(inviter)s invited you to join %(tenant)s on Allotment as %(role)s."),
                        template="invitation")
DIGEST = NoticeText(N_("Your Allotment summary: %(count)s unread notices"),
                    N_("Here is what happened since your last summary."), template="digest")
EMAIL_VERIFICATION = NoticeText(N_("Confirm your email address"),
                                N_("You asked for a new link that verifies %(email)s "
                                   "for your Allotment account."),
                                template="email_verification")
PASSWORD_RESET = NoticeText(N_("Choose a new password"),
                            N_("Someone asked for a link that sets a new password for the Allotment "
                               "account of %(email)s."),
                            template="password_reset")
