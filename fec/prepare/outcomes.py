"""What can become of a URL or of one face in it, in the order reports list them."""

OK = "ok"
NO_FACE = "no_face"  # the image decoded, but the detector found no face in this crop
HTTP_ERROR = "http_error"  # a status other than 200 (after retries for 408, 429, 5xx)
TIMEOUT = "timeout"  # connect or read timeout, or the whole download took too long
CONNECTION_ERROR = "connection_error"  # refused, reset, closed early, unknown host, TLS
TOO_MANY_REDIRECTS = "too_many_redirects"  # more than the limit, or a loop
BAD_URL = "bad_url"  # not http(s), no host, unparsable
TOO_LARGE = "too_large"  # body over the size cap
NOT_IMAGE = "not_image"  # an HTML page, or bytes no image format recognises
TOO_MANY_PIXELS = "too_many_pixels"  # header dimensions over the pixel cap: a decompression bomb
DECODE_ERROR = "decode_error"  # a known format that does not decode: truncated, corrupt

URL_OUTCOMES = (OK, HTTP_ERROR, TIMEOUT, CONNECTION_ERROR, TOO_MANY_REDIRECTS, BAD_URL, TOO_LARGE, NOT_IMAGE,
                TOO_MANY_PIXELS, DECODE_ERROR)
FACE_OUTCOMES = (OK, NO_FACE) + URL_OUTCOMES[1:]


def outcome_order(name):
    """Sort key: the order above, unknown names last."""
    return (FACE_OUTCOMES.index(name), name) if name in FACE_OUTCOMES else (len(FACE_OUTCOMES), name)
