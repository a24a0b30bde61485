"""The notice page a patient opens from a recall notice's link (no login), and the two
addresses the SMS provider calls: a patient's reply and a delivery report.

The notice page shows the notice on GET and records it as read when the patient presses the
button: mail scanners and link previews fetch every link in an email, and a fetch by a machine
must not tell the clinic that the patient has read it (reminders/views.py does the same).

The provider's requests carry no session and no CSRF token; they are trusted only when their
X-Twilio-Signature matches (notify/sms.py), computed over SITE_URL and the path: the address the
provider was given, whatever host a proxy passes on.
"""

from __future__ import annotations

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST

from mesoclinic.access import access_notice, caller_for_notice_link
from mesoclinic.notify import actions, links, sms

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


@require_http_methods(["GET", "POST"])
def notice(request: HttpRequest, token: str) -> HttpResponse:
    try:
        notice_id = links.read_token(token)
    except links.BadLink as bad:
        reason = "expired" if bad.expired else "invalid"
        return render(request, "notify/notice_closed.html", {"reason": reason}, status=400)
    try:
        found = access_notice(caller_for_notice_link(notice_id), notice_id, view=True)
    except Http404:
        return render(request, "notify/notice_closed.html", {"reason": "gone"}, status=404)
    if request.method == "POST":
        actions.do_mark_read(found)
    return render(request, "notify/notice.html", {"notice": found, "clinic": found.clinic})


def _signed(request: HttpRequest) -> dict[str, str] | None:
    params = {name: request.POST.get(name, "") for name in request.POST}
    url = f"{settings.SITE_URL.rstrip('/')}{request.get_full_path()}"
    if not sms.verify(url, params, request.headers.get("X-Twilio-Signature", "")):
        return None
    return params


@csrf_exempt
@require_POST
def sms_inbound(request: HttpRequest) -> HttpResponse:
    params = _signed(request)
    if params is None:
        return HttpResponse("The signature does not match.", status=403, content_type="text/plain")
    actions.do_inbound(params)
    # An empty answer: the provider sends its own confirmation of STOP and START.
    return HttpResponse(EMPTY_TWIML, content_type="text/xml")


@csrf_exempt
@require_POST
def sms_status(request: HttpRequest) -> HttpResponse:
    params = _signed(request)
    if params is None:
        return HttpResponse("The signature does not match.", status=403, content_type="text/plain")
    actions.do_status(params)
    return HttpResponse(status=204)
