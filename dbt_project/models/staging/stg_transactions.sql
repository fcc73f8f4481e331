select
    id as transaction_id,
    amount_cents / 100.0 as amount,
    currency,
    _loaded_at as loaded_at
from {{ source('finance', 'transactions') }}
