-- FinOps FOCUS 1.3 cost and usage (`focus_1_3_cost_and_usage`): every cost on an invoice as a
-- row. Rebuilt by migrate.py after focus.sql, whose `focus_costs` (1.2) it extends; read by
-- focus_1_4.sql. Mapping: docs/focus.md. `make focus FOCUS_VERSION=1.3` writes it and
-- tests/test_focus.py runs the FinOps Foundation's validator on it with the 1.3 model.

-- The taxes and credits an invoice's summary states when its items leave them out (the
-- reconciliation's second case): FOCUS 1.3 wants every invoiced cost as a row, so each is one.
CREATE OR REPLACE VIEW focus_summary_charges AS
WITH parts AS (
    SELECT invoice_uuid, invoice_period, 'taxes' AS part, 'Taxes' AS description, taxes AS amount
    FROM invoice_reconciliation
    WHERE reconciled_by = 'items plus the summary''s taxes and credits'
    UNION ALL
    SELECT invoice_uuid, invoice_period, 'credits_and_adjustments', 'Credits and adjustments',
           credits_and_adjustments
    FROM invoice_reconciliation
    WHERE reconciled_by = 'items plus the summary''s taxes and credits'
)
SELECT * FROM parts WHERE amount IS NOT NULL AND amount <> 0;

CREATE OR REPLACE VIEW focus_1_3_cost_and_usage AS
WITH summary_lines AS (
    SELECT c.amount AS BilledCost,
           c.amount AS EffectiveCost,
           c.amount AS ListCost,
           c.amount AS ContractedCost,
           'USD' AS BillingCurrency,
           a.billing_account_id AS BillingAccountId,
           a.billing_account_name AS BillingAccountName,
           CAST(CAST(c.invoice_period || '-01' AS DATE) AS TIMESTAMPTZ) AS BillingPeriodStart,
           CAST(CAST(c.invoice_period || '-01' AS DATE) + INTERVAL 1 MONTH AS TIMESTAMPTZ)
               AS BillingPeriodEnd,
           CASE WHEN c.part = 'taxes' THEN 'Tax'
                WHEN c.amount < 0 THEN 'Credit'
                ELSE 'Adjustment' END AS ChargeCategory,
           c.description AS ChargeDescription,
           'One-Time' AS ChargeFrequency,
           c.description AS ServiceName,
           'Other' AS ServiceCategory,
           'Other (Other)' AS ServiceSubcategory,
           'DigitalOcean' AS ProviderName,
           'DigitalOcean' AS PublisherName,
           'DigitalOcean' AS InvoiceIssuerName,
           coalesce(i.invoice_id, i.invoice_uuid) AS InvoiceId,
           '{}'::JSON AS Tags,
           c.invoice_period AS x_InvoicePeriod,
           c.invoice_uuid AS x_InvoiceUuid,
           c.part AS x_SummaryPart
    FROM focus_summary_charges AS c
    JOIN invoices AS i USING (invoice_uuid, invoice_period)
    LEFT JOIN focus_accounts AS a USING (invoice_uuid, invoice_period)
), lines AS (
    SELECT f.*, CAST(NULL AS VARCHAR) AS x_SummaryPart
    FROM focus_costs AS f
    UNION ALL BY NAME
    SELECT *, BillingPeriodStart AS ChargePeriodStart, BillingPeriodEnd AS ChargePeriodEnd
    FROM summary_lines
)
SELECT l.BilledCost,
       l.EffectiveCost,
       l.ListCost,
       l.ContractedCost,
       l.BillingCurrency,
       coalesce(l.BillingAccountId, 'digitalocean') AS BillingAccountId,
       coalesce(l.BillingAccountName, 'DigitalOcean account') AS BillingAccountName,
       l.BillingPeriodStart,
       l.BillingPeriodEnd,
       l.ChargePeriodStart,
       l.ChargePeriodEnd,
       l.ChargeCategory,
       l.ChargeClass,
       l.ChargeDescription,
       l.ChargeFrequency,
       l.ServiceName,
       l.ServiceCategory,
       l.ServiceSubcategory,
       -- 1.3: who sells the service and who runs the infrastructure. DigitalOcean does both, in
       -- its own data centres; a tax or credit on its invoice has no other host either.
       'DigitalOcean' AS ServiceProviderName,
       'DigitalOcean' AS HostProviderName,
       -- Deprecated in 1.3, still mandatory there (gone in 1.4).
       l.ProviderName,
       l.PublisherName,
       l.InvoiceIssuerName,
       -- 1.3 ties quantities to a price: PricingQuantity/ConsumedQuantity (and their units) MUST
       -- be NULL when SkuPriceId is, and DigitalOcean publishes no price ids. The duration each
       -- line was billed for is kept in x_UsageQuantity / x_UsageUnit.
       CAST(NULL AS DECIMAL(18, 6)) AS PricingQuantity,
       CAST(NULL AS VARCHAR) AS PricingUnit,
       CAST(NULL AS DECIMAL(18, 6)) AS ConsumedQuantity,
       CAST(NULL AS VARCHAR) AS ConsumedUnit,
       l.CommitmentDiscountStatus,
       l.ResourceId,
       l.ResourceName,
       l.ResourceType,
       l.RegionId,
       l.RegionName,
       l.SkuId,
       l.InvoiceId,
       coalesce(l.Tags, '{}'::JSON) AS Tags,
       l.ConsumedQuantity AS x_UsageQuantity,
       l.ConsumedUnit AS x_UsageUnit,
       l.x_ProjectName,
       -- Our allocation of the line (allocation.sql), never FOCUS's Allocated* columns, which are
       -- for providers that split a cost themselves: the kind of live resource the line names and
       -- the project the month's inventory assigns it to.
       ia.resource_kind AS x_AllocationResourceKind,
       ia.project_id AS x_AllocationProjectId,
       ia.project_name AS x_AllocationProjectName,
       l.x_ProductCategory,
       l.x_InvoicePeriod,
       l.x_InvoiceUuid,
       l.x_LineNumber,
       l.x_SummaryPart
FROM lines AS l
LEFT JOIN item_allocation AS ia
  ON ia.invoice_uuid = l.x_InvoiceUuid AND ia.line_number = l.x_LineNumber;
