"""Encryption: AEAD sealing and key-encryption-key providers.

Data is encrypted with a per-backup data key (DEK, AES-256-GCM); DEKs are wrapped by a
key-encryption key (KEK) held by a provider: a local key file today (``LocalKeyFile``);
AWS KMS and Vault transit plug in behind the same ``KeyProvider`` protocol.

May import: swarm.errors. Never imports storage or repo.
"""
