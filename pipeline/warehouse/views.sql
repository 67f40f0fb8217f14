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

-- Spend per month and DigitalOcean project.
CREATE OR REPLACE VIEW monthly_spend_by_project AS
SELECT invoice_period,
       coalesce(project_name, '(no project)') AS project_name,
       sum(amount) AS amount,
       count(*) AS items,
       bool_or(status = 'preview') AS is_partial,
       team_uuid,
       coalesce(any_value(n.team_name), '(before teams)') AS team_name
FROM invoice_items LEFT JOIN teams AS n USING (team_uuid)
GROUP BY invoice_period, coalesce(project_name, '(no project)'), team_uuid;

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
