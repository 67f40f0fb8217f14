-- Eighteen questions, one query each. Run them with: duckdb -readonly data/warehouse.duckdb
-- (the test suite runs every query below against a warehouse filled from the sandbox).

-- 1. Spend by product last quarter (the last three closed months).
SELECT product, sum(amount) AS usd
FROM monthly_spend_by_product
WHERE NOT is_partial
  AND invoice_period IN (SELECT DISTINCT invoice_period FROM monthly_spend_by_product
                         WHERE NOT is_partial ORDER BY invoice_period DESC LIMIT 3)
GROUP BY product ORDER BY usd DESC;

-- 2. Top 10 resources by spend over the last 12 closed months.
SELECT resource_uuid, resource_name, product, sum(amount) AS usd
FROM monthly_spend_by_resource
WHERE NOT is_partial
  AND invoice_period >= strftime(current_date - INTERVAL 12 MONTH, '%Y-%m')
GROUP BY ALL ORDER BY usd DESC LIMIT 10;

-- 3. Credits used per year.
SELECT left(x_InvoicePeriod, 4) AS year, -sum(BilledCost) AS credits_usd
FROM focus_costs WHERE ChargeCategory = 'Credit'
GROUP BY year ORDER BY year;

-- 4. Taxes per month.
SELECT x_InvoicePeriod AS invoice_period, sum(BilledCost) AS taxes_usd
FROM focus_costs WHERE ChargeCategory = 'Tax'
GROUP BY ALL ORDER BY invoice_period;

-- 5. Spend per project per month.
SELECT invoice_period, project_name, amount
FROM monthly_spend_by_project ORDER BY invoice_period, amount DESC;

-- 6. Products whose spend grew most from the previous closed month.
SELECT invoice_period, product, previous_amount, amount, change, change_pct
FROM product_month_over_month
WHERE NOT is_partial
  AND invoice_period = (SELECT max(invoice_period) FROM product_month_over_month
                        WHERE NOT is_partial)
ORDER BY change DESC LIMIT 5;

-- 7. This month so far, next to last month at the same day.
SELECT invoice_period, as_of, month_to_date, last_month_same_day_prorated, last_month_total
FROM month_to_date;

-- 8. Invoices that do not reconcile (should be empty), with the difference.
SELECT invoice_uuid, invoice_period, invoice_amount, summary_amount, items_sum,
       items_difference, problem
FROM invoice_reconciliation WHERE problem IS NOT NULL;

-- 9. Total billed per year, from the invoices.
SELECT left(invoice_period, 4) AS year, sum(amount) AS usd, count(*) AS invoices
FROM invoices WHERE status = 'final'
GROUP BY year ORDER BY year;

-- 10. Droplet hours per month.
SELECT invoice_period, sum(duration_hours) AS droplet_hours, sum(amount) AS usd
FROM invoice_items WHERE product = 'Droplets'
GROUP BY invoice_period ORDER BY invoice_period;

-- 11. The last 30 days by region (Billing Insights: estimates until the invoice is final).
SELECT region, sum(amount) AS usd, count(DISTINCT usage_date) AS days
FROM daily_spend_by_region
WHERE usage_date > (SELECT max(usage_date) FROM daily_costs) - INTERVAL 30 DAY
GROUP BY region ORDER BY usd DESC;

-- 12. Top ten SKUs of the last full month with insights.
SELECT sku, min(description) AS description, sum(amount) AS usd
FROM daily_spend_by_sku
WHERE usage_month = (SELECT max(month) FROM estimate_vs_invoice WHERE NOT is_partial)
GROUP BY sku ORDER BY usd DESC LIMIT 10;

-- 13. The days a SKU's cost jumped: more than double its previous day.
SELECT usage_date, sku, amount, previous_day, amount - previous_day AS jump
FROM (
    SELECT usage_date, sku, amount,
           lag(amount) OVER (PARTITION BY sku ORDER BY usage_date) AS previous_day
    FROM daily_spend_by_sku
)
WHERE previous_day > 0 AND amount > 2 * previous_day
ORDER BY jump DESC LIMIT 10;

-- 14. What was billed against what was paid, per month.
SELECT invoice_period, invoiced, paid, outstanding
FROM payments_vs_invoices ORDER BY invoice_period;


-- 15. Spend by the tag key `env` last closed month, the untagged share included (every key
--     splits the whole month: the NULL value is what no resource with that key explains).
SELECT team_name, coalesce(tag_value, '(untagged)') AS env, amount,
       round(100 * amount / sum(amount) OVER (PARTITION BY team_uuid), 1) AS pct
FROM cost_by_tag
WHERE tag_key = 'env'
  AND invoice_period = (SELECT max(invoice_period) FROM cost_by_tag WHERE NOT is_partial)
ORDER BY team_name, amount DESC;

-- 16. Untagged spend by product last closed month: lines whose resource has no tag, or that
--     name no resource that is still listed.
SELECT product, sum(amount) AS untagged_usd, count(*) AS lines
FROM item_allocation
WHERE NOT tagged
  AND invoice_period = (SELECT max(invoice_period) FROM allocation_coverage WHERE NOT is_partial)
GROUP BY product ORDER BY untagged_usd DESC;

-- 17. The top ten resources of the last closed month, with their project and tags.
SELECT resource_kind, resource_name, project_name, tags, amount
FROM cost_by_resource
WHERE invoice_period = (SELECT max(invoice_period) FROM cost_by_resource WHERE NOT is_partial)
ORDER BY amount DESC LIMIT 10;

-- 18. Allocation coverage per month: the share of spend that names a live resource.
SELECT invoice_period, team_name, amount, allocated_amount, tagged_amount, share
FROM allocation_coverage ORDER BY invoice_period, team_name;

-- 19. What to cut: the ten most expensive idle resources, by project (unattached volumes, load
--     balancers without targets, powered-off droplets, unassigned reserved IPs, snapshots older
--     than 90 days), with what each cost last month and so far this month.
SELECT coalesce(project_name, '(no project)') AS project, kind, resource_id, resource_name,
       cost_last_month, month_to_date, idle_since, team_name
FROM idle_resources
ORDER BY cost_last_month DESC, project, kind LIMIT 10;
