//! OCI distribution client: references, auth, manifest negotiation, pull and push.
