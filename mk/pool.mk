# pool: the blob hashes (common/hash.c) use OpenSSL's libcrypto (libssl-dev in scripts/deps.sh).
LDLIBS += -lcrypto
