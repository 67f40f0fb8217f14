-- FinOps FOCUS 1.2 cost and usage rows, one per invoice line (CostAndUsage dataset).
-- Rebuilt by migrate.py right after views.sql; kept apart so it can change on its own.
-- Mapping and rules: docs/data-dictionary.md, "FOCUS 1.2 mapping". `make focus` writes it to
-- Parquet (pipeline/focus.py) and tests/test_focus.py runs the FinOps Foundation's validator.

-- BILLING ACCOUNT, per invoice: the team. DigitalOcean bills each team separately; its uuid and
-- name come from GET /v2/account (the `teams` table). Rows loaded before teams were recorded fall
-- back to the invoice summary's account fields. Every FOCUS version's datasets read it.
CREATE OR REPLACE VIEW focus_accounts AS
SELECT i.invoice_uuid,
       i.invoice_period,
       coalesce(i.team_uuid, s.user_email, 'digitalocean') AS billing_account_id,
       coalesce(t.team_name, s.user_company, s.user_name, s.user_email,
                'DigitalOcean account') AS billing_account_name
FROM invoices AS i
LEFT JOIN teams AS t ON t.team_uuid = i.team_uuid
LEFT JOIN invoice_summaries AS s USING (invoice_uuid, invoice_period);

CREATE OR REPLACE VIEW focus_costs AS
WITH products (product, service_category, service_subcategory, resource_type) AS (
    -- What each DigitalOcean product is, in FOCUS's ServiceCategory/ServiceSubcategory lists
    -- and as a resource type. A product missing here is Other / Other (Other), its ResourceType
    -- the product's own name.
    VALUES ('Droplets', 'Compute', 'Virtual Machines', 'Droplet'),
           ('GPU Droplets', 'Compute', 'Virtual Machines', 'GPU Droplet'),
           ('Kubernetes Clusters', 'Compute', 'Containers', 'Kubernetes Cluster'),
           ('Functions', 'Compute', 'Serverless Compute', 'Functions Namespace'),
           ('App Platform', 'Web', 'Application Platforms', 'App'),
           ('Spaces Subscription', 'Storage', 'Object Storage', 'Spaces Subscription'),
           ('Spaces', 'Storage', 'Object Storage', 'Spaces Bucket'),
           ('Volumes', 'Storage', 'Block Storage', 'Volume'),
           ('Snapshots', 'Storage', 'Backup Storage', 'Snapshot'),
           ('Backups', 'Storage', 'Backup Storage', 'Backup'),
           ('Container Registry', 'Storage', 'Other (Storage)', 'Container Registry'),
           ('Managed Databases', 'Databases', 'Other (Databases)', 'Database Cluster'),
           ('Load Balancers', 'Networking', 'Application Networking', 'Load Balancer'),
           ('Bandwidth', 'Networking', 'Network Infrastructure', 'Bandwidth'),
           ('Floating IPs', 'Networking', 'Network Infrastructure', 'Floating IP'),
           ('Reserved IPs', 'Networking', 'Network Infrastructure', 'Reserved IP'),
           ('VPN', 'Networking', 'Network Connectivity', 'VPN Gateway')
), regions (region_id, region_name) AS (
    -- DigitalOcean's region slugs and names, as GET /v2/regions lists them. A slug missing
    -- here keeps the slug as its name (RegionName must not be NULL when RegionId is not).
    VALUES ('nyc1', 'New York 1'), ('nyc2', 'New York 2'), ('nyc3', 'New York 3'),
           ('sfo1', 'San Francisco 1'), ('sfo2', 'San Francisco 2'), ('sfo3', 'San Francisco 3'),
           ('ams2', 'Amsterdam 2'), ('ams3', 'Amsterdam 3'), ('sgp1', 'Singapore 1'),
           ('lon1', 'London 1'), ('fra1', 'Frankfurt 1'), ('tor1', 'Toronto 1'),
           ('blr1', 'Bangalore 1'), ('syd1', 'Sydney 1'), ('atl1', 'Atlanta 1'),
           ('ric1', 'Richmond 1')
), insight_keys AS (
    -- The Insights tie: Billing Insights points of a month grouped by description and group.
    -- A line of that month's invoice with the same description and group gets the region and
    -- the SKU when all those points agree on one; else NULL (never a guess).
    SELECT team_uuid,
           usage_month,
           description,
           coalesce(group_description, '') AS group_key,
           CASE WHEN count(DISTINCT region) = 1 AND count(region) = count(*)
                THEN min(region) END AS region,
           CASE WHEN count(DISTINCT sku) = 1 AND count(sku) = count(*)
                THEN min(sku) END AS sku
    FROM daily_costs
    WHERE description IS NOT NULL
    GROUP BY team_uuid, usage_month, description, coalesce(group_description, '')
), accounts AS (
    SELECT * FROM focus_accounts
), resource_tags_json AS (
    -- Tags (FOCUS 1.2): the resource's tags as of the month's inventory snapshot. User tags
    -- `k:v` are "k": "v" and a plain `k` is "k": true (a valueless tag gets boolean true, the one
    -- change FOCUS allows). DigitalOcean's own tags (DOKS's `k8s`, `k8s:<cluster id>`,
    -- `k8s:worker`) are provider-defined: each is kept whole under the prefix `do/`, valueless.
    SELECT team_uuid, source, valid_from, resource_id,
           json_group_object(tag_key, CASE WHEN is_valued THEN to_json(tag_value)
                                           ELSE to_json(true) END) AS tags
    FROM (
        SELECT team_uuid, source, valid_from, resource_id, tag_key, tag_value, is_valued
        FROM resource_tags WHERE tag_key <> 'k8s'
        UNION ALL
        SELECT team_uuid, source, valid_from, resource_id, 'do/' || tag, NULL, false
        FROM (SELECT team_uuid, source, valid_from, resource_id, unnest(tags) AS tag
              FROM inventory_resources)
        WHERE tag = 'k8s' OR tag LIKE 'k8s:%'
    )
    GROUP BY team_uuid, source, valid_from, resource_id
), item_tags AS (
    SELECT a.team_uuid, a.invoice_uuid, a.line_number, t.tags
    FROM item_allocation AS a
    JOIN resource_tags_json AS t
      ON t.team_uuid = a.team_uuid AND t.source = a.source
     AND t.valid_from = a.resource_valid_from AND t.resource_id = a.resource_id
), lines AS (
    SELECT it.*,
           tg.tags AS resource_tags,
           inv.invoice_id,
           a.billing_account_id,
           a.billing_account_name,
           CAST(CAST(it.invoice_period || '-01' AS DATE) AS TIMESTAMPTZ) AS period_start,
           CAST(CAST(it.invoice_period || '-01' AS DATE) + INTERVAL 1 MONTH AS TIMESTAMPTZ)
               AS period_end,
           CASE
               WHEN it.product ILIKE 'tax%' THEN 'Tax'
               WHEN it.amount < 0 OR it.product ILIKE '%credit%' THEN 'Credit'
               ELSE 'Usage'
           END AS charge_category
    FROM invoice_items AS it
    JOIN invoices AS inv USING (invoice_uuid, invoice_period)
    LEFT JOIN accounts AS a USING (invoice_uuid, invoice_period)
    LEFT JOIN item_tags AS tg
      ON tg.team_uuid = it.team_uuid AND tg.invoice_uuid = it.invoice_uuid
     AND tg.line_number = it.line_number
), tied AS (
    SELECT l.*,
           p.service_category,
           p.service_subcategory,
           p.resource_type,
           CASE WHEN l.charge_category <> 'Tax' THEN k.region END AS region,
           CASE WHEN l.charge_category <> 'Tax' THEN coalesce(r.region_name, k.region) END
               AS region_name,
           CASE WHEN l.charge_category <> 'Tax' THEN k.sku END AS sku
    FROM lines AS l
    LEFT JOIN products AS p ON p.product = l.product
    LEFT JOIN insight_keys AS k
      ON k.usage_month = l.invoice_period
     AND k.team_uuid IS NOT DISTINCT FROM l.team_uuid
     AND k.description = l.description
     AND k.group_key = coalesce(l.group_description, '')
    LEFT JOIN regions AS r ON r.region_id = k.region
)
SELECT amount AS BilledCost,
       amount AS EffectiveCost,
       amount AS ListCost,
       amount AS ContractedCost,
       'USD' AS BillingCurrency,
       coalesce(billing_account_id, 'digitalocean') AS BillingAccountId,
       coalesce(billing_account_name, 'DigitalOcean account') AS BillingAccountName,
       period_start AS BillingPeriodStart,
       period_end AS BillingPeriodEnd,
       coalesce(start_time, period_start) AS ChargePeriodStart,
       coalesce(end_time, period_end) AS ChargePeriodEnd,
       charge_category AS ChargeCategory,
       CAST(NULL AS VARCHAR) AS ChargeClass,
       coalesce(description, product, charge_category) AS ChargeDescription,
       CASE
           WHEN charge_category <> 'Usage' THEN 'One-Time'
           WHEN product ILIKE '%subscription%' THEN 'Recurring'
           ELSE 'Usage-Based'
       END AS ChargeFrequency,
       coalesce(product, charge_category) AS ServiceName,
       coalesce(service_category, 'Other') AS ServiceCategory,
       coalesce(service_subcategory, 'Other (Other)') AS ServiceSubcategory,
       'DigitalOcean' AS ProviderName,
       'DigitalOcean' AS PublisherName,
       'DigitalOcean' AS InvoiceIssuerName,
       CASE WHEN charge_category = 'Usage' THEN duration END AS PricingQuantity,
       CASE WHEN charge_category = 'Usage' AND duration IS NOT NULL THEN duration_unit END
           AS PricingUnit,
       CASE WHEN charge_category = 'Usage' THEN duration END AS ConsumedQuantity,
       CASE WHEN charge_category = 'Usage' AND duration IS NOT NULL THEN duration_unit END
           AS ConsumedUnit,
       -- No commitment discounts at DigitalOcean: NULL, present because ConsumedQuantity's
       -- nullability rules read it.
       CAST(NULL AS VARCHAR) AS CommitmentDiscountStatus,
       coalesce(resource_uuid, resource_id) AS ResourceId,
       coalesce(group_description, description) AS ResourceName,
       CASE WHEN coalesce(resource_uuid, resource_id) IS NOT NULL
            THEN coalesce(resource_type, product, charge_category) END AS ResourceType,
       region AS RegionId,
       region_name AS RegionName,
       sku AS SkuId,
       coalesce(invoice_id, invoice_uuid) AS InvoiceId,
       -- The item's project (provider-defined: `do/project`) and its resource's tags.
       CAST(json_merge_patch(
           CASE WHEN project_name IS NULL THEN '{}'::JSON
                ELSE json_object('do/project', project_name) END,
           coalesce(resource_tags, '{}'::JSON)) AS JSON) AS Tags,
       project_name AS x_ProjectName,
       category AS x_ProductCategory,
       invoice_period AS x_InvoicePeriod,
       invoice_uuid AS x_InvoiceUuid,
       line_number AS x_LineNumber
FROM tied;
