-- Spool schema, version 2: the retry backoff as a SQL function, so a Nack is
-- one statement (the delay depends on the job's attempt and its queue's
-- settings, both in the database).

-- Microseconds to wait before retrying after attempt `attempt` failed:
--   min(cap, initial * factor ^ (attempt - 1)),
--   times 1 ± jitter (jitter clamped to [0, 0.99]; `unit` is a uniform sample
--   in [0, 1): 0 gives the low end, 0.5 the middle),
--   clamped to [0, cap] again, so delays at the cap spread below it.
-- Attempts below 1 count as 1; huge attempts cannot overflow (the cap is
-- decided in log space before any power is taken); a zero initial delay or
-- cap means no delay.
CREATE FUNCTION spool_backoff_us(initial interval, factor double precision,
                                 cap interval, jitter double precision,
                                 attempt integer, unit double precision)
  RETURNS bigint LANGUAGE sql IMMUTABLE PARALLEL SAFE
  AS $$
SELECT trunc(least(c, greatest(0, b * (1 + least(greatest(jitter, 0), 0.99)
                                            * (2 * unit - 1))))
             * 1000000)::bigint
FROM (
  SELECT c,
         CASE WHEN i <= 0 OR c <= 0 THEN 0
              WHEN factor <= 1 THEN least(c, i)
              WHEN (greatest(attempt, 1) - 1) * ln(factor) >= ln(c) - ln(i) THEN c
              ELSE least(c, i * power(factor, greatest(attempt, 1) - 1))
         END AS b
  FROM (SELECT extract(epoch FROM initial)::float8 AS i,
               extract(epoch FROM cap)::float8 AS c) t
) s
$$;
