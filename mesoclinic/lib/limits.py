"""How long a piece of text a person may send, in characters: one number per kind of text, shared
by the API's schemas and the web forms so that both refuse the same input.

The database would store any length in a text column, so without these a mistaken paste (or a
hostile client) could store megabytes in an address. Short texts with a column of their own
(a name, a lot number) take the column's max_length instead.
"""

from __future__ import annotations

# A key of a protocol, ingredient, side effect, area or refusal code.
KEY = 60
# A one-line reason or label: why a course stopped, a lot was recalled, a visit cancelled.
REASON = 2000
# A postal address.
ADDRESS = 500
# Free notes and descriptions.
NOTES = 5000
# A consent's or photo consent's full wording.
CONSENT_TEXT = 20_000
# A drawn signature, as an SVG path or a PNG data URL.
SIGNATURE = 200_000
# A whole protocol document as text (TOML), edited on the web page.
DOCUMENT = 200_000
# A password: long enough for any passphrase, short enough that hashing it costs nothing.
PASSWORD = 4096
# A search box or a list of ids in a query string.
QUERY = 200
