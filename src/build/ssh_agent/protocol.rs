//! The subset of the SSH agent protocol (draft-miller-ssh-agent) a build needs: listing the
//! identities and signing with them. Everything else, including adding or removing keys,
//! is refused, so a step can use the keys but never change or extract them.

use signature::Signer;
use ssh_encoding::Encode;
use ssh_key::private::{KeypairData, RsaKeypair};
use ssh_key::{Algorithm, HashAlg, PrivateKey, Signature};

pub(super) const FAILURE: u8 = 5;
pub(super) const REQUEST_IDENTITIES: u8 = 11;
pub(super) const IDENTITIES_ANSWER: u8 = 12;
pub(super) const SIGN_REQUEST: u8 = 13;
pub(super) const SIGN_RESPONSE: u8 = 14;

/// Flags of a sign request asking for RSA signatures with SHA-2 (RFC 8332).
const RSA_SHA2_256: u32 = 2;
const RSA_SHA2_512: u32 = 4;

/// The largest message accepted, as OpenSSH's agent: larger ones close the connection.
pub(super) const MAX_MESSAGE: usize = 256 * 1024;

/// A key the agent holds, with its public blob computed once.
pub(super) struct Identity {
    key: PrivateKey,
    blob: Vec<u8>,
}

impl Identity {
    pub(super) fn new(key: PrivateKey) -> Result<Self, ssh_key::Error> {
        let blob = key.public_key().to_bytes()?;
        Ok(Self { key, blob })
    }
}

/// The reply to one message (its body, without the length prefix).
pub(super) fn respond(identities: &[Identity], request: &[u8]) -> Vec<u8> {
    let reply = match request.split_first() {
        Some((&REQUEST_IDENTITIES, [])) => Some(identities_answer(identities)),
        Some((&SIGN_REQUEST, rest)) => sign(identities, rest),
        _ => None,
    };
    reply.unwrap_or_else(|| vec![FAILURE])
}

fn identities_answer(identities: &[Identity]) -> Vec<u8> {
    let mut out = vec![IDENTITIES_ANSWER];
    put_u32(&mut out, identities.len());
    for id in identities {
        put_string(&mut out, &id.blob);
        put_string(&mut out, id.key.comment().as_bytes());
    }
    out
}

fn sign(identities: &[Identity], body: &[u8]) -> Option<Vec<u8>> {
    let mut r = Reader(body);
    let blob = r.string()?;
    let data = r.string()?;
    let flags = r.u32()?;
    if !r.0.is_empty() {
        return None;
    }
    let id = identities.iter().find(|id| id.blob == blob)?;
    let signature = match id.key.key_data() {
        KeypairData::Rsa(rsa) => sign_rsa(rsa, data, flags)?,
        other => other.try_sign(data).ok()?,
    };
    let mut encoded = Vec::new();
    signature.encode(&mut encoded).ok()?;
    let mut out = vec![SIGN_RESPONSE];
    put_string(&mut out, &encoded);
    Some(out)
}

/// RSA signs with the SHA-2 hash the client asked for. Legacy SHA-1 `ssh-rsa` signatures,
/// asked for without a flag, are refused: OpenSSH has disabled them by default since 8.8.
fn sign_rsa(key: &RsaKeypair, data: &[u8], flags: u32) -> Option<Signature> {
    use rsa::pkcs1v15::SigningKey;
    use ssh_key::sha2::{Sha256, Sha512};
    let private = rsa_private_key(key)?;
    let (hash, raw) = if flags & RSA_SHA2_512 != 0 {
        let signer = SigningKey::<Sha512>::new(private);
        (HashAlg::Sha512, signer.try_sign(data).ok()?)
    } else if flags & RSA_SHA2_256 != 0 {
        let signer = SigningKey::<Sha256>::new(private);
        (HashAlg::Sha256, signer.try_sign(data).ok()?)
    } else {
        return None;
    };
    let raw: Box<[u8]> = raw.into();
    Signature::new(Algorithm::Rsa { hash: Some(hash) }, raw.into_vec()).ok()
}

/// The key from its OpenSSH components. Built here rather than with ssh-key 0.6's
/// conversion, which passes `p` twice as the primes and so makes signatures that do not verify.
fn rsa_private_key(key: &RsaKeypair) -> Option<rsa::RsaPrivateKey> {
    let uint = |m: &ssh_key::Mpint| m.as_positive_bytes().map(rsa::BigUint::from_bytes_be);
    rsa::RsaPrivateKey::from_components(
        uint(&key.public.n)?,
        uint(&key.public.e)?,
        uint(&key.private.d)?,
        vec![uint(&key.private.p)?, uint(&key.private.q)?],
    )
    .ok()
}

/// A message with its length prefix, as sent on the socket.
pub(super) fn framed(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 4);
    put_string(&mut out, message);
    out
}

fn put_u32(out: &mut Vec<u8>, n: usize) {
    // Messages are bounded far below 4 GiB; a count that does not fit is clamped rather
    // than wrapped, and the client sees a malformed answer instead of another key.
    out.extend_from_slice(&u32::try_from(n).unwrap_or(u32::MAX).to_be_bytes());
}

fn put_string(out: &mut Vec<u8>, s: &[u8]) {
    put_u32(out, s.len());
    out.extend_from_slice(s);
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn u32(&mut self) -> Option<u32> {
        let (head, rest) = self.0.split_first_chunk::<4>()?;
        self.0 = rest;
        Some(u32::from_be_bytes(*head))
    }

    fn string(&mut self) -> Option<&'a [u8]> {
        let len = usize::try_from(self.u32()?).ok()?;
        if len > self.0.len() {
            return None;
        }
        let (s, rest) = self.0.split_at(len);
        self.0 = rest;
        Some(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use signature::Verifier;
    use ssh_key::rand_core::OsRng;

    fn identity(algorithm: Algorithm) -> Identity {
        let mut key = PrivateKey::random(&mut OsRng, algorithm).unwrap();
        key.set_comment("test key");
        Identity::new(key).unwrap()
    }

    fn sign_request(blob: &[u8], data: &[u8], flags: u32) -> Vec<u8> {
        let mut req = vec![SIGN_REQUEST];
        put_string(&mut req, blob);
        put_string(&mut req, data);
        req.extend_from_slice(&flags.to_be_bytes());
        req
    }

    /// Signs `data` through the protocol and checks the signature with the public key.
    fn signs_verifiably(id: &Identity, flags: u32) -> Signature {
        let data = b"session id and userauth request";
        let reply = respond(
            std::slice::from_ref(id),
            &sign_request(&id.blob, data, flags),
        );
        assert_eq!(reply[0], SIGN_RESPONSE, "{reply:?}");
        let mut r = Reader(&reply[1..]);
        let mut encoded = r.string().unwrap();
        assert!(r.0.is_empty());
        let signature = <Signature as ssh_encoding::Decode>::decode(&mut encoded).unwrap();
        id.key
            .public_key()
            .key_data()
            .verify(data, &signature)
            .unwrap();
        signature
    }

    #[test]
    fn identities_answer_lists_public_keys_and_comments() {
        let ids = [
            identity(Algorithm::Ed25519),
            identity(Algorithm::new("ecdsa-sha2-nistp256").unwrap()),
        ];
        let reply = respond(&ids, &[REQUEST_IDENTITIES]);
        let mut r = Reader(&reply[1..]);
        assert_eq!(reply[0], IDENTITIES_ANSWER);
        assert_eq!(r.u32(), Some(2));
        for id in &ids {
            let blob = r.string().unwrap();
            let public = ssh_key::PublicKey::from_bytes(blob).unwrap();
            assert_eq!(public.key_data(), id.key.public_key().key_data());
            assert_eq!(r.string(), Some(&b"test key"[..]));
        }
        assert!(r.0.is_empty());
        assert_eq!(
            respond(&[], &[REQUEST_IDENTITIES]),
            [IDENTITIES_ANSWER, 0, 0, 0, 0]
        );
    }

    #[test]
    fn signs_with_ed25519_and_ecdsa() {
        let ed = signs_verifiably(&identity(Algorithm::Ed25519), 0);
        assert_eq!(ed.algorithm(), Algorithm::Ed25519);
        let ec = identity(Algorithm::new("ecdsa-sha2-nistp256").unwrap());
        assert_eq!(
            signs_verifiably(&ec, 0).algorithm().as_str(),
            "ecdsa-sha2-nistp256"
        );
    }

    #[test]
    fn rsa_signs_with_the_hash_asked_for() {
        let key = RsaKeypair::random(&mut OsRng, 2048).unwrap();
        let id = Identity::new(PrivateKey::new(KeypairData::Rsa(key), "rsa").unwrap()).unwrap();
        let sha256 = signs_verifiably(&id, RSA_SHA2_256);
        assert_eq!(sha256.algorithm().as_str(), "rsa-sha2-256");
        let sha512 = signs_verifiably(&id, RSA_SHA2_512);
        assert_eq!(sha512.algorithm().as_str(), "rsa-sha2-512");
        // SHA-1 `ssh-rsa` is not offered.
        let reply = respond(std::slice::from_ref(&id), &sign_request(&id.blob, b"x", 0));
        assert_eq!(reply, [FAILURE]);
    }

    #[test]
    fn refuses_unknown_keys_unknown_requests_and_malformed_messages() {
        let id = identity(Algorithm::Ed25519);
        let ids = std::slice::from_ref(&id);
        let other = identity(Algorithm::Ed25519);
        assert_eq!(respond(ids, &sign_request(&other.blob, b"x", 0)), [FAILURE]);
        // Adding, removing and locking keys, and extensions: all refused.
        for kind in [17u8, 18, 19, 22, 27, 0, 255] {
            assert_eq!(respond(ids, &[kind]), [FAILURE], "request {kind}");
        }
        assert_eq!(respond(ids, &[]), [FAILURE]);
        assert_eq!(respond(ids, &[REQUEST_IDENTITIES, 0]), [FAILURE]);
        let full = sign_request(&id.blob, b"data", 0);
        for cut in 1..full.len() {
            assert_eq!(respond(ids, &full[..cut]), [FAILURE], "cut at {cut}");
        }
        let mut trailing = full.clone();
        trailing.push(0);
        assert_eq!(respond(ids, &trailing), [FAILURE]);
        // A string length past the message's end.
        let mut huge = vec![SIGN_REQUEST];
        huge.extend_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(respond(ids, &huge), [FAILURE]);
    }
}
