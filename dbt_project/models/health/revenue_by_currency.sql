select
    currency,
    count(*) as transactions,
    sum(amount) as revenue
from {{ ref('stg_transactions') }}
group by 1
