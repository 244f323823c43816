"""Identity: user accounts, password hashes (argon2), sign-in, the platform's tokens.

Owns: users (management database). Tokens are issued by the web edge from what
``authenticate`` returns.
"""
