"""VERIFY_CHALLENGE (op 201): check a secret-key answer for a handle this server holds (auth.md 7).

Used by other servers (and the REST API) to verify HS_SECKEY identities; needs no authentication.
"""

from __future__ import annotations

import logging

from hdlserver.auth.secret_answers import MalformedSecretAnswer, check_secret_against_values
from hdlserver.core.context import ServerState
from hdlserver.core.handler_api import HandlerResult
from hdlserver.core.homed import check_responsible
from hdlserver.errors import ProtocolError
from hdlserver.wire.bodies import VerifyChallengeRequest, VerifyChallengeResponse
from hdlserver.wire.codes import ResponseCode
from hdlserver.wire.handles import normalize_slashless

log = logging.getLogger("hdlserver.auth")

# What Java answers when its verifier throws on the answer (an unknown code, bad PBKDF2 parameters).
MALFORMED_ANSWER = "Server error processing request, see server logs"


def verify_challenge(state: ServerState, request: VerifyChallengeRequest, old_format: bool = False) -> HandlerResult:
    handle = normalize_slashless(request.handle)
    check_responsible(state.site, state.this_server_position, state.homed, handle)
    values = state.store.get_values(handle) or ()
    try:
        valid = check_secret_against_values(values, request.index, request.nonce, request.request_digest,
                                            request.signed_response, old_format=old_format)
    except MalformedSecretAnswer as exc:
        log.warning("VERIFY_CHALLENGE for %d:%s: %s", request.index, handle.decode("utf-8", "replace"), exc)
        raise ProtocolError(ResponseCode.ERROR, MALFORMED_ANSWER) from None
    return HandlerResult(ResponseCode.SUCCESS, VerifyChallengeResponse(valid))
