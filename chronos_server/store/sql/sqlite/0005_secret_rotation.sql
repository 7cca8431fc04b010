-- Signing-secret rotation with an overlap (`chronos secrets rotate --overlap 24h`). While
-- `signing_secret_previous_until` (Unix ms) is in the future, push deliveries carry a signature
-- by the previous secret next to the one by `signing_secret`. From then on the previous secret is
-- ignored (the sender compares with its clock at send time) and cleared lazily. Both columns are
-- set together or not at all. Touches `accounts` only, so it applies the same before or after
-- any other pending migration (0004 included, whichever lands first on a database).
ALTER TABLE accounts ADD COLUMN signing_secret_previous TEXT;
ALTER TABLE accounts ADD COLUMN signing_secret_previous_until INTEGER
    CHECK ((signing_secret_previous IS NULL) = (signing_secret_previous_until IS NULL));
