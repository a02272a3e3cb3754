-- Per app and day (UTC): requests, peak requests/s (the busiest 10 s window),
-- the worst window p99, 5xx ratio, observed instance-hours (instance rows:
-- instances that served or reported in a window) and scale actions (decisions
-- that changed the count, whoever took them).
WITH w AS (
    SELECT
        app,
        day,
        SUM(CASE WHEN instance IS NULL THEN requests ELSE 0 END) AS requests,
        MAX(CASE WHEN instance IS NULL THEN rps END) AS peak_rps,
        MAX(CASE WHEN instance IS NULL THEN p99_ms END) AS max_p99_ms,
        SUM(CASE WHEN instance IS NULL THEN status_5xx ELSE 0 END) AS errors,
        SUM(CASE WHEN instance IS NOT NULL THEN window_s ELSE 0 END) / 3600.0 AS instance_hours
    FROM windows
    GROUP BY app, day
),
d AS (
    SELECT app, day, COUNT(*) AS scale_actions
    FROM decisions
    WHERE direction <> 'none'
    GROUP BY app, day
)
SELECT
    w.app,
    w.day,
    w.requests,
    w.peak_rps,
    w.max_p99_ms,
    CASE WHEN w.requests > 0 THEN CAST(w.errors AS DOUBLE) / w.requests ELSE 0.0 END AS error_ratio,
    w.instance_hours,
    COALESCE(d.scale_actions, 0) AS scale_actions
FROM w
LEFT JOIN d ON w.app = d.app AND w.day = d.day
ORDER BY w.app, w.day
