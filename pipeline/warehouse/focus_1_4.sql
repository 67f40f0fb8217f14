-- FinOps FOCUS 1.4: cost and usage, and the two invoice datasets, BillingPeriod and
-- InvoiceDetail. Rebuilt by migrate.py after focus_1_3.sql, whose rows they share. Mapping and
-- what DigitalOcean cannot fill: docs/focus.md. tests/test_focus.py checks them against FOCUS
-- 1.4's column list and that their keys join.

-- InvoiceDetail: one row per invoice line as DigitalOcean issues it (an invoice's items, the
-- taxes and credits its summary adds when the items leave them out), with the invoice's state.
-- Lines of 0.00 are kept: they are on the invoice.
CREATE OR REPLACE VIEW focus_1_4_invoice_detail AS
WITH lines AS (
    SELECT c.*,
           i.status AS invoice_status,
           coalesce(i.updated_at, i.loaded_at) AS invoice_updated_at,
           it.description AS item_description,
           it.group_description AS item_group_description
    FROM focus_1_3_cost_and_usage AS c
    JOIN invoices AS i ON i.invoice_uuid = c.x_InvoiceUuid AND i.invoice_period = c.x_InvoicePeriod
    LEFT JOIN invoice_items AS it
      ON it.invoice_uuid = c.x_InvoiceUuid AND it.line_number = c.x_LineNumber
), dated AS (
    SELECT *,
           -- DigitalOcean issues a month's invoice on the first of the next; the open month's
           -- is a preview, not issued.
           CASE WHEN invoice_status = 'final' THEN BillingPeriodEnd END AS issue_date
    FROM lines
)
SELECT BilledCost,
       BillingAccountId,
       BillingCurrency,
       BillingPeriodEnd,
       BillingPeriodStart,
       ChargeCategory,
       coalesce(issue_date, BillingPeriodStart) AS InvoiceDetailCreated,
       ChargeDescription AS InvoiceDetailDescription,
       -- What makes the line a line: the product, the resource, DigitalOcean's two descriptions.
       -- json_merge_patch leaves out the keys whose value is NULL.
       json_merge_patch(
           json_object('ServiceName', ServiceName),
           json_object('ResourceId', ResourceId),
           json_object('x_Description', item_description),
           json_object('x_GroupDescription', nullif(item_group_description, '')),
           json_object('x_SummaryPart', x_SummaryPart)
       ) AS InvoiceDetailGrain,
       InvoiceId || '-' || coalesce(CAST(x_LineNumber AS VARCHAR), x_SummaryPart)
           AS InvoiceDetailId,
       greatest(invoice_updated_at, coalesce(issue_date, BillingPeriodStart))
           AS InvoiceDetailLastUpdated,
       InvoiceId,
       issue_date AS InvoiceIssueDate,
       CASE WHEN invoice_status = 'final' THEN 'Issued' ELSE 'Open' END AS InvoiceIssueStatus,
       InvoiceIssuerName,
       -- The API states no due date; DigitalOcean charges the payment method on file when it
       -- issues the invoice.
       CAST(NULL AS TIMESTAMPTZ) AS PaymentDueDate,
       'Due on receipt' AS PaymentTerms,
       -- DigitalOcean's invoices never adjust an earlier one: credits are lines of the month's.
       InvoiceId AS ReferenceInvoiceId,
       BillingAccountName AS x_BillingAccountName,
       x_UsageQuantity,
       x_UsageUnit,
       x_InvoicePeriod,
       x_InvoiceUuid,
       x_LineNumber,
       x_SummaryPart
FROM dated;

-- Cost and usage, 1.4: 1.3's rows without the deprecated ProviderName and PublisherName, each
-- pointing at its InvoiceDetail line.
CREATE OR REPLACE VIEW focus_1_4_cost_and_usage AS
SELECT * EXCLUDE (ProviderName, PublisherName, x_UsageQuantity, x_UsageUnit, x_ProjectName,
                  x_AllocationResourceKind, x_AllocationProjectId, x_AllocationProjectName,
                  x_ProductCategory, x_InvoicePeriod, x_InvoiceUuid, x_LineNumber, x_SummaryPart),
       InvoiceId || '-' || coalesce(CAST(x_LineNumber AS VARCHAR), x_SummaryPart)
           AS InvoiceDetailId,
       x_UsageQuantity,
       x_UsageUnit,
       x_ProjectName,
       x_AllocationResourceKind,
       x_AllocationProjectId,
       x_AllocationProjectName,
       x_ProductCategory,
       x_InvoicePeriod,
       x_InvoiceUuid,
       x_LineNumber,
       x_SummaryPart
FROM focus_1_3_cost_and_usage;

-- BillingPeriod: one row per team and month of the invoice list, the open month (its preview)
-- included. FOCUS keys it by BillingPeriodStart and InvoiceIssuerName; with several teams in one
-- warehouse the team is x_BillingAccountId, and the invoice's total x_BilledCost.
CREATE OR REPLACE VIEW focus_1_4_billing_period AS
WITH periods AS (
    SELECT coalesce(a.billing_account_id, 'digitalocean') AS billing_account_id,
           any_value(coalesce(a.billing_account_name, 'DigitalOcean account'))
               AS billing_account_name,
           i.invoice_period,
           bool_or(i.status = 'preview') AS is_open,
           max(coalesce(i.updated_at, i.loaded_at)) AS updated_at,
           string_agg(coalesce(i.invoice_id, i.invoice_uuid), ',' ORDER BY i.invoice_uuid)
               AS invoice_ids,
           sum(i.amount) AS amount,
           count(*) AS invoices
    FROM invoices AS i
    LEFT JOIN focus_accounts AS a USING (invoice_uuid, invoice_period)
    GROUP BY ALL
), bounded AS (
    SELECT *,
           CAST(CAST(invoice_period || '-01' AS DATE) AS TIMESTAMPTZ) AS period_start,
           CAST(CAST(invoice_period || '-01' AS DATE) + INTERVAL 1 MONTH AS TIMESTAMPTZ)
               AS period_end
    FROM periods
)
SELECT period_start AS BillingPeriodCreated,
       period_end AS BillingPeriodEnd,
       greatest(updated_at, period_start) AS BillingPeriodLastUpdated,
       period_start AS BillingPeriodStart,
       CASE WHEN is_open THEN 'Open' ELSE 'Closed' END AS BillingPeriodStatus,
       'DigitalOcean' AS InvoiceIssuerName,
       billing_account_id AS x_BillingAccountId,
       billing_account_name AS x_BillingAccountName,
       CAST(amount AS DECIMAL(18, 2)) AS x_BilledCost,
       'USD' AS x_BillingCurrency,
       invoice_ids AS x_InvoiceId,
       invoices AS x_Invoices,
       invoice_period AS x_InvoicePeriod
FROM bounded;
