-- Views for analysts, rebuilt on every write connection. Documented in docs/data-dictionary.md.
-- Every view is per team: team_uuid, and the team's name as GET /v2/account last gave it
-- (`(before teams)` for rows loaded before teams were recorded), are its last two columns.

-- Spend per month and product; the open month (preview) is marked partial.
CREATE OR REPLACE VIEW monthly_spend_by_product AS
SELECT invoice_period,
       coalesce(product, '(no product)') AS product,
       sum(amount) AS amount,
       count(*) AS items,
       bool_or(status = 'preview') AS is_partial,
       team_uuid,
       coalesce(any_value(n.team_name), '(before teams)') AS team_name
FROM invoice_items LEFT JOIN teams AS n USING (team_uuid)
GROUP BY invoice_period, coalesce(product, '(no product)'), team_uuid;

-- Spend per month and resource, named by the resource's most recent name.
CREATE OR REPLACE VIEW monthly_spend_by_resource AS
WITH latest_name AS (
    SELECT team_uuid,
           resource_uuid,
           arg_max(coalesce(group_description, description),
                   (invoice_period, coalesce(end_time, TIMESTAMPTZ '1970-01-01'))) AS resource_name
    FROM invoice_items
    WHERE resource_uuid IS NOT NULL
    GROUP BY team_uuid, resource_uuid
)
SELECT i.invoice_period,
       i.resource_uuid,
       n.resource_name,
       any_value(i.product) AS product,
       sum(i.amount) AS amount,
       bool_or(i.status = 'preview') AS is_partial,
       i.team_uuid,
       coalesce(any_value(t.team_name), '(before teams)') AS team_name
FROM invoice_items AS i
JOIN latest_name AS n
  ON n.resource_uuid = i.resource_uuid AND n.team_uuid IS NOT DISTINCT FROM i.team_uuid
LEFT JOIN teams AS t ON t.team_uuid = i.team_uuid
GROUP BY i.invoice_period, i.resource_uuid, n.resource_name, i.team_uuid;

-- Month-over-month change by product over whole months only: the open month is listed
-- (is_partial) but gets no change figures, and is never the "previous" month of another.
CREATE OR REPLACE VIEW product_month_over_month AS
WITH closed AS (
    SELECT * FROM monthly_spend_by_product WHERE NOT is_partial
), months AS (
    SELECT DISTINCT team_uuid, invoice_period FROM closed
), numbered AS (
    SELECT team_uuid, invoice_period,
           lag(invoice_period) OVER (PARTITION BY team_uuid ORDER BY invoice_period)
               AS previous_period
    FROM months
)
SELECT c.invoice_period,
       c.product,
       c.amount,
       n.previous_period,
       coalesce(p.amount, 0) AS previous_amount,
       c.amount - coalesce(p.amount, 0) AS change,
       round(100 * (c.amount - p.amount) / nullif(p.amount, 0), 1) AS change_pct,
       false AS is_partial,
       c.team_uuid,
       c.team_name
FROM closed AS c
JOIN numbered AS n
  ON n.invoice_period = c.invoice_period AND n.team_uuid IS NOT DISTINCT FROM c.team_uuid
LEFT JOIN closed AS p
  ON p.invoice_period = n.previous_period AND p.product = c.product
 AND p.team_uuid IS NOT DISTINCT FROM c.team_uuid
UNION ALL
SELECT invoice_period, product, amount, NULL, NULL, NULL, NULL, true, team_uuid, team_name
FROM monthly_spend_by_product
WHERE is_partial;

-- The open month to date (from the preview) next to last month prorated to the same day.
-- Line items cover whole billing periods, so "last month at the same day" is last month's
-- total times (days elapsed / days in last month); the view says so in its columns.
CREATE OR REPLACE VIEW month_to_date AS
WITH preview AS (
    SELECT team_uuid, invoice_period, amount, coalesce(updated_at, loaded_at) AS as_of
    FROM invoices WHERE status = 'preview'
), last_month AS (
    SELECT team_uuid, invoice_period, sum(amount) AS amount FROM invoices WHERE status = 'final'
    GROUP BY ALL
)
SELECT p.invoice_period,
       p.as_of,
       p.amount AS month_to_date,
       l.invoice_period AS last_period,
       l.amount AS last_month_total,
       day(p.as_of AT TIME ZONE 'UTC') AS days_elapsed,
       CAST(round(l.amount * day(p.as_of AT TIME ZONE 'UTC')
             / day(last_day(CAST(l.invoice_period || '-01' AS DATE))), 2) AS DECIMAL(18, 2))
           AS last_month_same_day_prorated,
       p.team_uuid,
       coalesce(n.team_name, '(before teams)') AS team_name
FROM preview AS p
LEFT JOIN last_month AS l
  ON l.invoice_period = strftime(CAST(p.invoice_period || '-01' AS DATE) - INTERVAL 1 MONTH, '%Y-%m')
 AND l.team_uuid IS NOT DISTINCT FROM p.team_uuid
LEFT JOIN teams AS n ON n.team_uuid = p.team_uuid;

-- Per invoice: invoice amount vs summary amount vs the sum of items, with an explanation.
CREATE OR REPLACE VIEW invoice_reconciliation AS
WITH items AS (
    SELECT invoice_uuid, sum(amount) AS items_sum, count(*) AS items
    FROM invoice_items GROUP BY invoice_uuid
)
SELECT i.invoice_uuid,
       i.invoice_period,
       i.status,
       i.amount AS invoice_amount,
       s.amount AS summary_amount,
       coalesce(it.items_sum, 0) AS items_sum,
       s.taxes,
       s.credits_and_adjustments,
       coalesce(it.items_sum, 0) - i.amount AS items_difference,
       CASE
           WHEN s.invoice_uuid IS NULL THEN 'no summary loaded'
           WHEN i.amount <> s.amount THEN 'invoice amount differs from the summary amount'
           WHEN coalesce(it.items_sum, 0) = i.amount THEN NULL
           WHEN coalesce(it.items_sum, 0) + coalesce(s.taxes, 0)
                + coalesce(s.credits_and_adjustments, 0) = i.amount THEN NULL
           ELSE 'items do not add up to the invoice, even counting taxes and credits'
       END AS problem,
       CASE
           WHEN coalesce(it.items_sum, 0) = i.amount THEN 'items include taxes and credits'
           WHEN coalesce(it.items_sum, 0) + coalesce(s.taxes, 0)
                + coalesce(s.credits_and_adjustments, 0) = i.amount
               THEN 'items plus the summary''s taxes and credits'
       END AS reconciled_by,
       i.team_uuid,
       coalesce(n.team_name, '(before teams)') AS team_name
FROM invoices AS i
LEFT JOIN invoice_summaries AS s USING (invoice_uuid, invoice_period)
LEFT JOIN items AS it USING (invoice_uuid)
LEFT JOIN teams AS n ON n.team_uuid = i.team_uuid;

-- Daily spend by region, from Billing Insights (estimates; see estimate_vs_invoice).
CREATE OR REPLACE VIEW daily_spend_by_region AS
SELECT usage_date,
       usage_month,
       coalesce(region, '(no region)') AS region,
       sum(amount) AS amount,
       count(*) AS points,
       team_uuid,
       coalesce(any_value(n.team_name), '(before teams)') AS team_name
FROM daily_costs LEFT JOIN teams AS n USING (team_uuid)
GROUP BY usage_date, usage_month, coalesce(region, '(no region)'), team_uuid;

-- Daily spend by SKU, with the SKU's description.
CREATE OR REPLACE VIEW daily_spend_by_sku AS
SELECT usage_date,
       usage_month,
       coalesce(sku, '(no sku)') AS sku,
       min(description) AS description,
       sum(amount) AS amount,
       count(*) AS points,
       team_uuid,
       coalesce(any_value(n.team_name), '(before teams)') AS team_name
FROM daily_costs LEFT JOIN teams AS n USING (team_uuid)
GROUP BY usage_date, usage_month, coalesce(sku, '(no sku)'), team_uuid;

-- Per month with insights: their total (nightly estimates) against the invoices' total. The
-- API warns the two may differ; the open month is partial on both sides.
CREATE OR REPLACE VIEW estimate_vs_invoice AS
WITH estimates AS (
    SELECT team_uuid, usage_month AS month, sum(amount) AS insights_total, count(*) AS points
    FROM daily_costs
    GROUP BY ALL
), invoiced AS (
    SELECT team_uuid, invoice_period AS month, sum(amount) AS invoice_total,
           bool_or(status = 'preview') AS is_preview
    FROM invoices
    GROUP BY ALL
)
SELECT e.month,
       e.insights_total,
       i.invoice_total,
       e.insights_total - i.invoice_total AS difference,
       e.points,
       coalesce(i.is_preview, true) OR e.month >= strftime(current_date, '%Y-%m') AS is_partial,
       e.team_uuid,
       coalesce(n.team_name, '(before teams)') AS team_name
FROM estimates AS e
LEFT JOIN invoiced AS i ON i.month = e.month AND i.team_uuid IS NOT DISTINCT FROM e.team_uuid
LEFT JOIN teams AS n ON n.team_uuid = e.team_uuid;

-- Per invoice month: what was billed (final invoices) against what the billing history shows
-- paid for those invoices (Payment entries, matched by invoice_uuid).
CREATE OR REPLACE VIEW payments_vs_invoices AS
WITH paid AS (
    SELECT invoice_uuid, -sum(amount) AS paid, count(*) AS payments
    FROM billing_history
    WHERE type = 'Payment' AND invoice_uuid IS NOT NULL
    GROUP BY ALL
)
SELECT i.invoice_period,
       count(*) AS invoices,
       sum(i.amount) AS invoiced,
       coalesce(sum(p.paid), 0) AS paid,
       sum(i.amount) - coalesce(sum(p.paid), 0) AS outstanding,
       count(p.invoice_uuid) AS invoices_with_payments,
       i.team_uuid,
       coalesce(any_value(n.team_name), '(before teams)') AS team_name
FROM invoices AS i
LEFT JOIN paid AS p USING (invoice_uuid)
LEFT JOIN teams AS n ON n.team_uuid = i.team_uuid
WHERE i.status = 'final'
GROUP BY i.invoice_period, i.team_uuid;

-- Cost anomalies, with the thresholds as arguments: the `budget_and_anomalies` checks call it
-- with the settings (ANOMALY_MADS, ANOMALY_MIN_USD, ANOMALY_MIN_RATIO, NEW_SKU_MIN_USD); the
-- view cost_anomalies below calls it with their defaults (6, 50.00, 10, 10.00).
-- Its alert_key is the format of pipeline/alerts/keys.py (spike_key, new_sku_key): change both.
--
-- A day's cost of a SKU (all its regions) or of a service (all its SKUs) is a spike when
--   * it has a baseline: the team has data from 14 days before the day on, and the SKU or
--     service cost something on at least 7 of those 14 days (a sporadic or new one is not
--     judged against a mostly empty baseline; new SKUs have their own rule);
--   * cost - median > mads * 1.4826 * MAD, the median and MAD (median absolute deviation)
--     taken over the trailing 14 days on which it cost something (1.4826 * MAD estimates the
--     standard deviation robustly: earlier spikes in the window do not move it);
--   * cost - median >= min_usd, and cost >= min_ratio * median: floors, so a flat cost (MAD
--     0.00) a few cents higher, or a noisy SKU's ordinary swing, is not an anomaly.
-- A service spike is reported only when none of its SKUs spiked that day (the SKU's alert
-- already says it); the service of a SKU is the product of the invoice lines described as its
-- points are (the Billing Insights tie, as in focus_costs); SKUs without one have no service.
-- A new SKU: its first cost comes at least 30 days after the team's data starts (so it was
-- not there before), and within its first 14 days it costs >= new_sku_min on a day: the first
-- such day is reported, with baseline 0.00.
CREATE OR REPLACE MACRO cost_anomalies_at(mads, min_usd, min_ratio, new_sku_min) AS TABLE
WITH team_start AS (
    SELECT team_uuid, min(usage_date) AS first_day FROM daily_costs GROUP BY team_uuid
), sku_services AS (
    SELECT d.team_uuid, d.sku,
           CASE WHEN count(DISTINCT i.product) = 1 THEN min(i.product) END AS service
    FROM (SELECT DISTINCT team_uuid, sku, description, coalesce(group_description, '') AS g
          FROM daily_costs WHERE description IS NOT NULL AND sku IS NOT NULL) AS d
    JOIN (SELECT DISTINCT team_uuid, product, description, coalesce(group_description, '') AS g
          FROM invoice_items WHERE description IS NOT NULL AND product IS NOT NULL) AS i
      ON i.team_uuid IS NOT DISTINCT FROM d.team_uuid AND i.description = d.description
     AND i.g = d.g
    GROUP BY d.team_uuid, d.sku
), points AS (
    SELECT c.*, coalesce(c.sku, '(no sku)') AS sku_key, s.service
    FROM daily_costs AS c
    LEFT JOIN sku_services AS s ON s.team_uuid IS NOT DISTINCT FROM c.team_uuid AND s.sku = c.sku
), days AS (
    SELECT team_uuid, 'sku' AS grain, sku_key AS subject, sku_key AS sku,
           any_value(service) AS service, usage_date, sum(amount) AS cost,
           string_agg(DISTINCT coalesce(region, '(no region)'), ', '
                      ORDER BY coalesce(region, '(no region)')) AS region
    FROM points GROUP BY team_uuid, sku_key, usage_date
    UNION ALL
    SELECT team_uuid, 'service', service, NULL, service, usage_date, sum(amount),
           string_agg(DISTINCT coalesce(region, '(no region)'), ', '
                      ORDER BY coalesce(region, '(no region)'))
    FROM points WHERE service IS NOT NULL GROUP BY team_uuid, service, usage_date
), windows AS (
    SELECT d.team_uuid, d.grain, d.subject, d.sku, d.service, d.usage_date, d.cost, d.region,
           -- At four decimals, a median of cents (or of deviations from one) is exact.
           list(CAST(b.cost AS DECIMAL(18, 4))) FILTER (WHERE b.cost IS NOT NULL) AS costs
    FROM days AS d
    LEFT JOIN days AS b
      ON b.team_uuid IS NOT DISTINCT FROM d.team_uuid AND b.grain = d.grain
     AND b.subject = d.subject
     AND b.usage_date BETWEEN d.usage_date - 14 AND d.usage_date - 1
    GROUP BY ALL
), judged AS (
    SELECT w.*,
           len(w.costs) AS days_with_cost,
           list_aggregate(w.costs, 'median') AS baseline,
           list_aggregate(w.costs, 'mad') AS mad
    FROM windows AS w
    JOIN team_start AS t ON t.team_uuid IS NOT DISTINCT FROM w.team_uuid
    WHERE t.first_day <= w.usage_date - 14 AND len(w.costs) >= 7
), spikes AS (
    SELECT * FROM judged
    WHERE cost - baseline >= min_usd AND cost >= min_ratio * baseline
      AND cost - baseline > mads * 1.4826 * mad
), sku_spike_days AS (
    -- A service's spike is shown only on days none of its SKUs spiked (a join, not a
    -- subquery over `spikes`: DuckDB 1.4, which reads the published file, cannot bind that).
    SELECT DISTINCT team_uuid, service, usage_date FROM spikes WHERE grain = 'sku'
), firsts AS (
    SELECT d.team_uuid, d.sku, min(d.usage_date) AS first_day
    FROM days AS d WHERE d.grain = 'sku' GROUP BY ALL
), new_skus AS (
    SELECT d.team_uuid, d.sku, d.service, arg_min(d.usage_date, d.usage_date) AS usage_date,
           arg_min(d.cost, d.usage_date) AS cost, arg_min(d.region, d.usage_date) AS region,
           any_value(f.first_day) AS first_day
    FROM days AS d
    JOIN firsts AS f ON f.team_uuid IS NOT DISTINCT FROM d.team_uuid AND f.sku = d.sku
    JOIN team_start AS t ON t.team_uuid IS NOT DISTINCT FROM d.team_uuid
    WHERE d.grain = 'sku' AND f.first_day >= t.first_day + 30
      AND d.usage_date < f.first_day + 14 AND d.cost >= new_sku_min
    GROUP BY d.team_uuid, d.sku, d.service
)
SELECT s.usage_date,
       'spike' AS kind,
       s.grain,
       s.sku,
       s.service,
       s.region,
       CAST(s.cost AS DECIMAL(18, 2)) AS cost,
       CAST(s.baseline AS DECIMAL(18, 4)) AS baseline,
       CAST(s.mad AS DECIMAL(18, 4)) AS mad,
       CAST(s.cost - s.baseline AS DECIMAL(18, 4)) AS excess,
       format('{} cost {} on {}, {} above its median of {} (MAD {}) over the {} of the last 14 '
              || 'days it cost',
              CASE s.grain WHEN 'sku' THEN 'SKU ' || s.subject ELSE 'service ' || s.subject END,
              CAST(CAST(s.cost AS DECIMAL(18, 2)) AS VARCHAR), s.usage_date,
              CAST(CAST(s.cost - s.baseline AS DECIMAL(18, 2)) AS VARCHAR),
              CAST(CAST(s.baseline AS DECIMAL(18, 2)) AS VARCHAR),
              CAST(CAST(s.mad AS DECIMAL(18, 2)) AS VARCHAR), s.days_with_cost) AS why,
       'spike:' || coalesce(s.team_uuid, '') || ':' || s.grain || ':' || s.subject || ':'
           || strftime(s.usage_date, '%Y-%m-%d') AS alert_key,
       s.team_uuid,
       coalesce(n.team_name, '(before teams)') AS team_name
FROM spikes AS s
LEFT JOIN teams AS n ON n.team_uuid = s.team_uuid
LEFT JOIN sku_spike_days AS k
       ON s.grain <> 'sku' AND k.service = s.subject AND k.usage_date = s.usage_date
      AND k.team_uuid IS NOT DISTINCT FROM s.team_uuid
WHERE s.grain = 'sku' OR k.service IS NULL
UNION ALL
SELECT w.usage_date, 'new_sku', 'sku', w.sku, w.service, w.region,
       CAST(w.cost AS DECIMAL(18, 2)), CAST(0 AS DECIMAL(18, 4)), CAST(0 AS DECIMAL(18, 4)),
       CAST(w.cost AS DECIMAL(18, 4)),
       format('new SKU {} (first cost on {}) cost {} on {}, at least {}',
              w.sku, w.first_day, CAST(CAST(w.cost AS DECIMAL(18, 2)) AS VARCHAR), w.usage_date,
              CAST(CAST(new_sku_min AS DECIMAL(18, 2)) AS VARCHAR)),
       'new_sku:' || coalesce(w.team_uuid, '') || ':' || w.sku,
       w.team_uuid,
       coalesce(n.team_name, '(before teams)')
FROM new_skus AS w
LEFT JOIN teams AS n ON n.team_uuid = w.team_uuid;

-- Every cost anomaly in the loaded history at the default thresholds (see cost_anomalies_at).
CREATE OR REPLACE VIEW cost_anomalies AS
SELECT * FROM cost_anomalies_at(6, 50.00, 10, 10.00)
ORDER BY usage_date, team_uuid, kind, grain, sku, service;

-- Each team's month: to date and the month-end forecast, linear on the daily run rate.
-- month_to_date is the newest balance snapshot of the month (month_to_date_usage, what the bill
-- says so far), else the sum of its Billing Insights points. The run rate is the mean daily
-- Insights cost over the month's last 7 loaded days (fewer early in the month); the forecast
-- adds it for every day after the last loaded one. A closed month's forecast is its total.
CREATE OR REPLACE VIEW month_forecast AS
WITH insights AS (
    SELECT team_uuid, usage_month AS month, sum(amount) AS insights_to_date,
           max(usage_date) AS last_day
    FROM daily_costs GROUP BY ALL
), recent AS (
    SELECT i.team_uuid, i.month,
           least(7, day(i.last_day)) AS rate_days,
           sum(c.amount) AS recent_cost
    FROM insights AS i
    JOIN daily_costs AS c
      ON c.team_uuid IS NOT DISTINCT FROM i.team_uuid AND c.usage_month = i.month
     AND c.usage_date > i.last_day - CAST(least(7, day(i.last_day)) AS INTEGER)
    GROUP BY ALL
), snapshots AS (
    SELECT team_uuid, balance_month AS month,
           arg_max(month_to_date_usage, generated_at) AS balance_to_date,
           max(generated_at) AS balance_at
    FROM balance GROUP BY ALL
), months AS (
    SELECT team_uuid, month FROM insights UNION SELECT team_uuid, month FROM snapshots
), figures AS (
    SELECT m.team_uuid, m.month,
           day(last_day(CAST(m.month || '-01' AS DATE))) AS days_in_month,
           i.last_day,
           coalesce(day(i.last_day), 0) AS days_loaded,
           i.insights_to_date,
           s.balance_to_date,
           s.balance_at,
           coalesce(s.balance_to_date, i.insights_to_date) AS month_to_date,
           -- The mean in whole cents, rounded half up, in integers: never through a float.
           CAST(CAST((CAST(r.recent_cost * 100 AS BIGINT) * 2 + r.rate_days)
                     // (2 * r.rate_days) AS DECIMAL(18, 0)) * 0.01 AS DECIMAL(18, 2))
               AS run_rate,
           m.month < strftime(current_date, '%Y-%m') AS is_closed
    FROM months AS m
    LEFT JOIN insights AS i ON i.team_uuid IS NOT DISTINCT FROM m.team_uuid AND i.month = m.month
    LEFT JOIN recent AS r ON r.team_uuid IS NOT DISTINCT FROM m.team_uuid AND r.month = m.month
    LEFT JOIN snapshots AS s
      ON s.team_uuid IS NOT DISTINCT FROM m.team_uuid AND s.month = m.month
)
SELECT f.month,
       f.month_to_date,
       f.balance_to_date,
       f.insights_to_date,
       f.last_day,
       f.days_loaded,
       f.days_in_month,
       f.run_rate,
       CAST(CASE WHEN f.is_closed THEN f.month_to_date
                 ELSE f.month_to_date
                      + coalesce(f.run_rate, 0) * (f.days_in_month - f.days_loaded)
            END AS DECIMAL(18, 2)) AS forecast,
       NOT f.is_closed AS is_open,
       f.team_uuid,
       coalesce(n.team_name, '(before teams)') AS team_name
FROM figures AS f
LEFT JOIN teams AS n ON n.team_uuid = f.team_uuid;
